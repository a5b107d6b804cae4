"""The stt instance's capacity: measured from one stream's decode cost (stt/capacity.py), or
configured; the probe follows the backend's own decode schedule and its result bounds the
streams admitted."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from jbcalling.stt.capacity import Capacity, probe_audio, streams_for
from jbcalling.stt.offline import VadOfflineBackend
from jbcalling.stt.settings import SttSettings

pytestmark = pytest.mark.unit
DECODE_S = 0.03


class SlowDecoder:
    """Takes DECODE_S per call, like a model of known speed; records what it was given."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def decode(self, segments: list[np.ndarray]) -> list[str]:
        time.sleep(DECODE_S)
        self.lengths.extend(len(s) for s in segments)
        return ["" for _ in segments]


def backend(partial_interval_ms: int = 600) -> tuple[VadOfflineBackend, SlowDecoder]:
    decoder = SlowDecoder()
    settings = SttSettings(partial_interval_ms=partial_interval_ms, partial_first_ms=100)
    return VadOfflineBackend("en", "m", decoder, "vad-whisper", settings, vad=None), decoder  # type: ignore[arg-type]


def test_the_probe_decodes_partials_then_the_final_and_times_them() -> None:
    b, decoder = backend()
    capacity = Capacity(0, budget=1.0, max_sessions=50, languages=["en"], probe_s=3.0)
    assert capacity.source == "measuring" and capacity.streams == 50  # max_sessions meanwhile
    capacity.probe(b)
    assert capacity.source == "measured"
    # after the warm-up (one decode: the first partial at 0.1 s): partials at 0.1 s, then
    # every 0.6 s plus twice the decode time, and the final of all 3 s
    probe = decoder.lengths[1:]
    assert probe[0] == 1600 and probe[-1] == 48000, probe
    assert all(b - a >= 9600 for a, b in pairwise(probe[:-1])), probe
    rtf = capacity.rtf["en"]
    assert len(probe) * DECODE_S / 3 <= rtf < len(probe) * DECODE_S / 3 * 3, (rtf, probe)
    assert capacity.streams == streams_for(rtf, 1.0, 50) == int(1.0 / rtf)


def test_the_probe_stops_after_its_time_on_a_slow_machine() -> None:
    b, decoder = backend()
    seconds, heard = b.cost(probe_audio(3.0), limit_s=0.1)
    assert seconds >= 0.1, seconds
    assert heard < 3.0 and heard == decoder.lengths[-1] / 16000  # no final: partials only
    assert len(decoder.lengths) >= 2


def test_capacity_bounds() -> None:
    assert streams_for(0.27, 1.2, 8) == 4
    assert streams_for(2.0, 1.2, 8) == 1  # a slow machine still serves one stream
    assert streams_for(0.01, 1.2, 8) == 8  # never above max_sessions
    configured = Capacity(3, 1.2, 8, ["en"])
    assert configured.source == "configured" and configured.streams == 3
    assert Capacity(30, 1.2, 8, ["en"]).streams == 8


def test_the_most_costly_language_bounds_the_instance() -> None:
    capacity = Capacity(0, 1.0, 16, ["en", "vi"])
    capacity.measured("en", 0.25)
    assert capacity.streams == 16  # vi not measured yet
    capacity.measured("vi", 0.1)
    assert capacity.streams == 4


def test_a_failed_probe_leaves_max_sessions() -> None:
    class Broken(SlowDecoder):
        def decode(self, segments: list[np.ndarray]) -> list[str]:
            raise RuntimeError("model gone")

    b, _ = backend()
    b.decoder = Broken()
    capacity = Capacity(0, 1.0, 6, ["en"], probe_s=1.0)
    capacity.probe(b)
    assert capacity.source == "measured" and capacity.rtf == {} and capacity.streams == 6


def test_probe_audio_is_voiced_and_deterministic() -> None:
    a, b = probe_audio(1.0), probe_audio(1.0)
    assert a.dtype == np.float32 and len(a) == 16000 and np.array_equal(a, b)
    assert 0.02 < float(np.sqrt(np.mean(a ** 2))) < 0.3 and float(np.abs(a).max()) <= 1


def test_backlog_counts_audio_a_slow_worker_took_but_did_not_recognize() -> None:
    from jbcalling.stt.backend import Backend, Backlog

    class Idle(Backend):  # a worker that never gets to its audio
        def start_stream(self) -> None:
            return None

        def step(self, work: Any, last: bool) -> None:
            return None

    b = Idle("en", "m", max_backlog_s=2.0)
    stream = b.open(lambda item: None)
    second = np.zeros(16000, dtype="<i2").tobytes()
    b.feed(stream, second)
    with b.lock:  # what the worker does when it takes the inbox, before stepping through it
        stream.inbox, stream.pending = [], 0
    b.feed(stream, second)  # 2 s behind: at the limit
    with pytest.raises(Backlog, match=r"2\.0 s of audio not yet recognized") as caught:
        b.feed(stream, second)
    assert caught.value.pending_s == 2.0
    stream.samples = 32000  # the worker caught up
    b.feed(stream, second)
