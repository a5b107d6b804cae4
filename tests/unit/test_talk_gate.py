"""Who takes an stt stream: the gateway's talk gate (gateway/speech_gate.py) and what a
participant's stream keeps and counts while they are quiet (gateway/speaker_stream.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from jbcalling.gateway.speaker_stream import MAX_BUFFER_BYTES, SpeakerStream
from jbcalling.gateway.speech_gate import PREROLL_BYTES, WINDOW_S, TalkGate

pytestmark = pytest.mark.unit
CHUNK = 320  # 20 ms at 16 kHz: one decoded Opus frame


def chunks(samples: np.ndarray) -> list[bytes]:
    return [samples[k:k + CHUNK].astype("<i2").tobytes() for k in range(0, len(samples), CHUNK)]


def tone(seconds: float, dbfs: float) -> np.ndarray:
    """A 200 Hz sine whose RMS is ``dbfs`` (0 dBFS: a full-scale square wave's)."""
    t = np.arange(int(16000 * seconds)) / 16000
    return np.sqrt(2) * 32768 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * 200 * t)


def test_speech_level_held_over_the_window_opens_the_gate() -> None:
    gate = TalkGate(-40.0)
    said = [gate.loud(c) for c in chunks(tone(0.4, -30.0))]
    window = int(WINDOW_S * 16000) // CHUNK
    # not before the window is full of it, then on every chunk
    assert said == [False] * (window - 1) + [True] * (len(said) - window + 1), said


@pytest.mark.parametrize("signal", [
    np.zeros(16000),  # digital silence (a DTX or muted-level packet decodes to zeros)
    tone(1.0, -50.0),  # room noise below the level
    np.where(np.arange(16000) % 4000 == 0, 30000.0, 0.0),  # clicks: one loud sample 4 times
])
def test_silence_noise_and_clicks_do_not(signal: np.ndarray) -> None:
    gate = TalkGate(-40.0)
    assert not any(gate.loud(c) for c in chunks(signal))


def stream() -> tuple[SpeakerStream, Any]:
    registry = CollectorRegistry()
    pipeline = SimpleNamespace(audio_dropped=Counter("dropped", "", ["reason"],
                                                     registry=registry))
    return SpeakerStream(pipeline, "room", "pid"), pipeline  # type: ignore[arg-type]


def dropped(pipeline: Any, reason: str) -> float:
    return float(pipeline.audio_dropped.labels(reason)._value.get())


def test_a_quiet_participant_keeps_half_a_second_and_counts_the_rest_as_quiet() -> None:
    s, pipeline = stream()
    for c in chunks(np.zeros(16000 * 5)):
        s.push(c)
    assert s.queued == PREROLL_BYTES and not s.wanted.is_set() and not s.cut
    assert dropped(pipeline, "quiet") == pytest.approx(4.5)
    # they talk: the stream is wanted, the half second before comes with it, and the audio held
    # while it opens grows to MAX_BUFFER_BYTES before anything more is dropped ("opening")
    for c in chunks(tone(4.0, -25.0)):
        s.push(c)
    assert s.wanted.is_set() and s.quiet_for() < 1.0
    assert s.queued == MAX_BUFFER_BYTES and s.cut
    # the gate opened at the fourth loud chunk (half of its window): three more went as quiet
    assert dropped(pipeline, "quiet") == pytest.approx(4.5 + 3 * CHUNK / 16000)
    # every second pushed is kept or counted
    assert dropped(pipeline, "opening") == pytest.approx(9.0 - 3.0 - 4.5 - 3 * CHUNK / 16000)
