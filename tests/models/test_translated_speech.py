"""Spoken translation streams (gateway/translated_speech.py): the first sentence is queued on the
listener's speech track while tts is still synthesizing the next, with the real Piper joe voice
(PyPI) over tts's own HTTP API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jbcalling.common.discovery import Discovery
from jbcalling.common.protocol import Caption, Event, Participant
from jbcalling.gateway.speech_track import SpeechTrack
from jbcalling.gateway.translated_speech import TranslatedSpeech
from jbcalling.speech.layout import DEV_VOICES
from jbcalling.tts.app import create_app
from jbcalling.tts.settings import TtsSettings
from speech_fixtures import models_dir  # noqa: F401

pytestmark = pytest.mark.models
# the second sentence is long, so that it is still being synthesized when the first arrives
TEXT = ("Good morning everyone. Today we will talk about the new train line that runs from the "
        "harbour to the old market, and about the bridge that will be finished next spring.")


def _people() -> dict[str, Participant]:
    return {pid: Participant(pid, name, "vi" if pid == "a" else "en", "vi" if pid == "a" else "en",
                             pid == "b", "guest", 0.0)
            for pid, name in (("a", "An"), ("b", "Ben"))}


async def _speak(url: str | None) -> tuple[list[tuple[float, Event]], SpeechTrack, float]:
    events: list[tuple[float, Event]] = []
    track = SpeechTrack()

    async def publish(room: str, event: Event) -> None:
        events.append((time.monotonic(), event))

    async def people(room: str) -> dict[str, Participant]:
        return _people()

    caption = Caption(kind="final", speaker="a", speaker_name="An", segment="1:0", lang="vi",
                      text="...", start_ms=0, end_ms=1000, audio_end_ms=1, emitted_ms=2)
    async with httpx.AsyncClient(timeout=60) as http:
        speech = TranslatedSpeech(Discovery("http://127.0.0.1:9", {"tts": url or ""}), http,
                                  publish, people, lambda room: {"b": track})
        await speech.speak("r", caption, "en", TEXT)
    return events, track, time.monotonic()


def test_the_first_sentence_plays_while_the_next_is_synthesized(models_dir: Path, serve: Any,  # noqa: F811
                                                                clean_environ: None) -> None:
    app = create_app(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))
    with serve(app) as srv:
        events, track, done = asyncio.run(_speak(srv.url))
    speech = [(at, e) for at, e in events if e.type == "speech"]
    assert len(speech) >= 2, events
    first_at, first = speech[0]
    total_ms = track.queued_ms  # nothing consumed the track: all of it is still queued
    assert first.listeners == ["b"] and first.lang == "en" and first.peak > 10000
    # the first event came with the first sentence only, well before the whole body was in
    assert first.duration_ms < 0.5 * total_ms, (first.duration_ms, total_ms)
    assert done - first_at > 0.05
    assert speech[-1][1].duration_ms == total_ms  # the last one counts everything queued


def test_tts_unreachable_tells_the_listener_and_plays_nothing(clean_environ: None) -> None:
    events, track, _ = asyncio.run(_speak("http://127.0.0.1:9"))
    assert [e.type for _, e in events] == ["speech_status"]
    assert events[0][1].to == "b" and track.queued_ms == 0
