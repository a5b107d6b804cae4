"""mt benchmark: latency for 15- and 30-token sentences with an OPUS-MT-sized stand-in (fixed
output length, greedy, one thread), batched vs unbatched throughput, and the service's memory.

Target (issue 3): p50 <= 150 ms for 15 tokens. Stand-in weights are random; the cost matches a
real opus-mt model of the same dimensions (docs/models.md).

    .venv/bin/python benchmarks/speech_mt_bench.py [--runs 20]

Prints JSON and saves benchmarks/results/speech_mt.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
from speech_common import models_dir, rss_mb, save, service, stats

from jbcalling.mt.engine import DecodeOptions, PairEngine

SENTENCE = "We need to finish the report by Friday, and then we can all go home early today."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    root = models_dir()
    folder = root / "opus-mt-en-vi-standin-base"
    latency = {}
    for tokens in (15, 30):
        engine = PairEngine("en-vi", folder.name, folder, 1, DecodeOptions(1, tokens, tokens))
        engine.translate([SENTENCE])  # warm-up
        samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            engine.translate([SENTENCE])
            samples.append(time.perf_counter() - t0)
        latency[f"{tokens}_tokens"] = stats(samples)
    engine = PairEngine("en-vi", folder.name, folder, 1, DecodeOptions(1, 15, 15))
    batch = [f"{SENTENCE} Number {i}." for i in range(32)]
    t0 = time.perf_counter()
    for s in batch:
        engine.translate([s])
    unbatched = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.translate(batch)
    batched = time.perf_counter() - t0

    # The service end to end: 32 concurrent requests, micro-batched, and its memory.
    env = {"MODELS_DIR": str(root), "TRANSLATORS": "1", "BEAM_SIZE": "1",
           "MAX_DECODING_LENGTH": "15", "MIN_DECODING_LENGTH": "15",
           "PAIRS": json.dumps({"en-vi": "opus-mt-en-vi-standin-base",
                                "vi-en": "opus-mt-vi-en-standin-base"})}
    with service("mt", env) as (url, pid):
        async def burst() -> float:
            async with httpx.AsyncClient(timeout=60) as client:
                t0 = time.perf_counter()
                await asyncio.gather(*(client.post(url + "/v1/translate", json={
                    "source": "en", "target": "vi", "texts": [s]}) for s in batch))
                return time.perf_counter() - t0
        service_burst = asyncio.run(burst())
        one = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            httpx.post(url + "/v1/translate", json={"source": "en", "target": "vi",
                                                    "texts": [f"{SENTENCE[:-1]} {i}."]}, timeout=60)
            one.append(time.perf_counter() - t0)
        memory = rss_mb(pid)
    save("speech_mt", {
        "model": "OPUS-MT base-size stand-in (d=512, 6+6 layers, vocab 53000), int8, 1 thread, greedy",
        "engine_latency": latency,
        "target_p50_ms_15_tokens": 150,
        "throughput_32_sentences_15_tokens": {
            "unbatched_s": round(unbatched, 3), "batched_s": round(batched, 3),
            "batched_over_unbatched_speedup": round(unbatched / batched, 2)},
        "service": {"request_15_tokens": stats(one), "32_concurrent_requests_s": round(service_burst, 3),
                    "memory_two_directions": memory},
    })


if __name__ == "__main__":
    main()
