"""The stt instance's capacity: measured from one stream's decode cost (stt/capacity.py), or
configured; the probe follows the backend's own decode schedule and its result bounds the
streams admitted. Then, while serving, the figure follows the observed real-time factor and
lag (down at once, up slowly), the newest streams beyond it are shed (stt/admission.py), and a
stream that falls behind drops what waits and resumes at the next pause, never captioning cut
audio (stt/backend.py)."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from jbcalling.stt.backend import Backend
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
    assert capacity.source == "measured at start"
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
    assert capacity.source == "measured at start" and capacity.rtf == {}
    assert capacity.streams == 6


def test_probe_audio_is_voiced_and_deterministic() -> None:
    a, b = probe_audio(1.0), probe_audio(1.0)
    assert a.dtype == np.float32 and len(a) == 16000 and np.array_equal(a, b)
    assert 0.02 < float(np.sqrt(np.mean(a ** 2))) < 0.3 and float(np.abs(a).max()) <= 1


def measured(rtf: float = 0.25, window_s: float = 5.0) -> Capacity:
    capacity = Capacity(0, budget=1.2, max_sessions=8, languages=["en"], window_s=window_s,
                        lag_s=1.5)
    capacity.measured("en", rtf)  # 1.2 / 0.25: 4 streams
    return capacity


def serve(capacity: Capacity, t0: float, seconds: int, rtf: float, lag: float = 0.2,
          open_streams: int = 4) -> list[int]:
    """``seconds`` of serving from ``t0``: each second the workers stepped 1 s of speech at
    ``rtf``, then the service's tick; the figure after each tick."""
    out = []
    for k in range(seconds):
        capacity.served(rtf, 1.0, now=t0 + k + 0.5)
        out.append(capacity.update(t0 + k + 1, open_streams, lag))
    return out


def test_the_observed_factor_lowers_the_capacity_at_once_and_raises_it_slowly() -> None:
    capacity = measured()
    assert capacity.streams == 4 and capacity.source == "measured at start"
    # serving, decodes take 2.4x longer than the start-up measurement saw (the rooms' media, other
    # processes): 1.2 / 0.6 = 2 streams, as soon as 2 s of speech were observed
    figures = serve(capacity, 0.0, 6, rtf=0.6)
    assert figures[0] == 4 and figures[1] == 2 and figures[-1] == 2, figures
    assert capacity.source == "observed" and capacity.observed_rtf == 0.6
    # the cores free again (factor 0.2: 0.96 / 0.2 = 4 with the margin): one stream at a time,
    # each after 3 windows (15 s) without a change
    figures = serve(capacity, 6.0, 40, rtf=0.2)
    assert figures[:10] == [2] * 10, figures
    assert 3 in figures and figures.index(3) >= 10 and figures[-1] == 4, figures
    assert figures.index(4) - figures.index(3) >= 15, figures
    assert serve(capacity, 46.0, 20, rtf=0.2)[-1] == 4  # not above what the margin allows


def test_a_factor_near_the_boundary_does_not_flap() -> None:
    capacity = measured()
    serve(capacity, 0.0, 6, rtf=0.35)  # 1.2 / 0.35: 3
    assert capacity.streams == 3
    # 1.2 / 0.3 = 4 would fit, 0.96 / 0.3 = 3 with the margin: no step up
    assert set(serve(capacity, 6.0, 60, rtf=0.3)) == {3}


def test_a_lag_that_lasts_sheds_one_stream_at_a_time() -> None:
    capacity = measured()
    # the factor says 4 fit, but the most behind stream stays 2 s behind: over capacity
    figures = serve(capacity, 0.0, 3, rtf=0.25, lag=2.0)
    assert figures == [4, 4, 3], figures  # three ticks in a row, then one fewer than open (4)
    figures = serve(capacity, 3.0, 8, rtf=0.25, lag=2.0, open_streams=3)
    assert figures[:4] == [3, 3, 3, 3] and figures[-1] == 2, figures  # after the window
    # a lag that comes and goes (a burst replayed at a stream's start) is no verdict
    capacity = measured()
    lags = [2.0, 0.3, 2.5, 0.2, 2.0, 2.0, 0.1] * 3
    assert {capacity.update(float(k), 4, lag) for k, lag in enumerate(lags)} == {4}


def test_without_speech_the_figure_holds_and_an_idle_instance_returns_to_its_start() -> None:
    capacity = measured()
    serve(capacity, 0.0, 3, rtf=0.8)
    assert capacity.streams == 1
    # streams open, nobody talks: nothing observed, nothing changes
    assert {capacity.update(3.0 + k, 1, 0.0) for k in range(60)} == {1}
    # nobody connected: back to the start-up figure, one step per 3 windows
    figures = [capacity.update(63.0 + k, 0, 0.0) for k in range(50)]
    assert figures[-1] == 4 and figures.count(2) >= 14 and figures.count(3) >= 14, figures


def test_a_configured_capacity_does_not_move() -> None:
    capacity = Capacity(3, 1.2, 8, ["en"])
    assert serve(capacity, 0.0, 10, rtf=2.0, lag=3.0) == [3] * 10
    assert capacity.source == "configured" and not capacity.work  # nothing kept for nothing


def test_what_the_workers_served_is_kept_for_one_window_only() -> None:
    capacity = measured(window_s=5.0)
    for k in range(1000):  # no update meanwhile (the service's tick late on a loaded machine)
        capacity.served(0.01, 0.1, now=k * 0.1)
    assert len(capacity.work) <= 51


class Idle(Backend):  # a recognizer that does nothing: admission and backlog bookkeeping only
    def start_stream(self) -> None:
        return None

    def step(self, work: Any, last: bool) -> None:
        return None


def test_the_newest_talking_stream_is_shed_when_the_instance_lags() -> None:
    from prometheus_client import CollectorRegistry

    from jbcalling.stt.admission import Admission

    capacity = measured()
    b = Idle("en", "m", max_backlog_s=3.0)
    admission = Admission(capacity, {"en": b}, CollectorRegistry())
    sessions = [admission.admit(b.open(lambda item: None)) for _ in range(4)]
    capacity.served(3.0, 5.0, now=0.5)  # 0.6 worker s per s of speech: 2 talking streams fit
    assert admission.tick(1.0) == 0 and capacity.streams == 2
    # admission refuses a fifth, but the four open ones keep up (quiet listeners): none goes
    assert [x.shed for x in sessions] == [False] * 4
    second = np.zeros(16000, dtype="<i2").tobytes()
    for s in sessions:
        b.feed(s.handle, second + second)  # 2 s behind, and the worker does not catch up
    for k, t in enumerate((7.0, 8.0, 9.0)):
        for s in sessions[:3]:  # the three oldest talk; the newest listens
            s.handle.voiced += 16000
        assert admission.tick(t) == (1 if k == 2 else 0)  # a lag 3 ticks in a row
    # the newest *talking* stream goes; the quiet one, which costs nothing, stays
    assert [x.shed for x in sessions] == [False, False, True, False]
    assert capacity.streams == 2
    assert admission.tick(10.0) == 0  # counted once, and no other step down within the window
    assert admission.shed._value.get() == 1


def test_a_lone_talker_that_lags_is_not_shed() -> None:
    from prometheus_client import CollectorRegistry

    from jbcalling.stt.admission import Admission

    capacity = measured()
    b = Idle("en", "m", max_backlog_s=3.0)
    admission = Admission(capacity, {"en": b}, CollectorRegistry())
    talker, listener = (admission.admit(b.open(lambda item: None)) for _ in range(2))
    b.feed(talker.handle, np.zeros(32000, dtype="<i2").tobytes())
    for t in (1.0, 2.0, 3.0):
        talker.handle.voiced += 16000
        assert admission.tick(t) == 0
    # over capacity all the same: no new stream (the skip keeps the talker's captions whole)
    assert capacity.streams == 1 and capacity.source == "observed"
    assert not talker.shed and not listener.shed


def test_a_stream_that_falls_behind_drops_what_waits() -> None:
    b = Idle("en", "m", max_backlog_s=2.0)
    stream = b.open(lambda item: None)
    second = np.zeros(16000, dtype="<i2").tobytes()
    assert b.feed(stream, second) == 0.0
    with b.lock:  # what the worker does when it takes the inbox, before stepping through it
        stream.inbox, stream.pending = [], 0
    assert b.feed(stream, second) == 0.0  # 2 s behind: at the limit
    assert b.lag_s() == 2.0
    # one more second: the second waiting in the inbox is dropped (the one the worker holds
    # cannot be), the new one waits
    assert b.feed(stream, second) == 1.0
    assert stream.pending == 16000 and stream.dropped == 16000 and b.lag_s() == 2.0


class LoudnessVad:
    """Silero's interface, deciding by loudness: speech is audio above 0.05 RMS; a segment ends
    after 0.3 s of quiet (vad_min_silence_ms), like sherpa-onnx's VoiceActivityDetector."""

    def __init__(self) -> None:
        self.n, self.start, self.quiet = 0, -1, 0
        self.audio: list[np.ndarray] = []
        self.segments: list[Any] = []

    def accept_waveform(self, audio: np.ndarray) -> None:
        loud = float(np.sqrt(np.mean(np.square(audio)))) > 0.05
        if loud and self.start < 0:
            self.start, self.audio = self.n, []
        if self.start >= 0:
            self.audio.append(audio)
            self.quiet = 0 if loud else self.quiet + len(audio)
            if self.quiet >= 4800:
                self.flush()
        self.n += len(audio)

    def flush(self) -> None:
        if self.start >= 0:
            from types import SimpleNamespace
            whole = np.concatenate(self.audio)
            self.segments.append(SimpleNamespace(start=self.start,
                                                 samples=whole[:len(whole) - self.quiet]))
        self.start, self.quiet = -1, 0

    def is_speech_detected(self) -> bool:
        return self.start >= 0

    def empty(self) -> bool:
        return not self.segments

    @property
    def front(self) -> Any:
        return self.segments[0]

    def pop(self) -> None:
        self.segments.pop(0)


class Lengths:
    """Decodes each segment to the seconds it lasts and where it starts (its first sample's
    value, the tests' sample clock), so that a caption says which audio it came from."""

    def decode(self, segments: list[np.ndarray]) -> list[str]:
        return [f"{len(s) / 16000:.1f}s from {round(float(s[0]) * 32768) - 3000}"
                for s in segments]


def test_after_falling_behind_no_caption_comes_from_cut_audio() -> None:
    from types import SimpleNamespace

    from jbcalling.stt.events import Notice, Result

    settings = SttSettings(partial_interval_ms=0, stable_partial_quiet_ms=0)
    vad = SimpleNamespace(create=LoudnessVad)
    b = VadOfflineBackend("en", "m", Lengths(), "vad-whisper", settings, vad=vad,  # type: ignore[arg-type]
                          )
    b.max_backlog = 16000  # 1 s
    out: list[Any] = []
    stream = b.open(out.append)

    def sentence(seconds: float, at_ms: int) -> bytes:  # loud; its samples say where it began
        return np.full(int(seconds * 16000), 3000 + at_ms, "<i2").tobytes()

    quiet = np.zeros(16000 // 2, "<i2").tobytes()  # 0.5 s
    fed = 0

    def feed(pcm: bytes, stall: bool = False) -> float:
        """100 ms frames; the worker keeps up unless it ``stall``s."""
        nonlocal fed
        lost = 0.0
        for k in range(0, len(pcm), 3200):
            lost += b.feed(stream, pcm[k:k + 3200])
            if not stall:
                b.iterate()
        fed += len(pcm) // 2
        return lost

    assert feed(sentence(1.0, 0) + quiet) == 0  # A, whole
    # B: the worker stalls for 2 s; of B's first 2 s waiting, the oldest 1 s is dropped
    assert feed(sentence(2.0, 1500), stall=True) == 1.0
    b.iterate()  # the worker is back
    # the rest of B, a pause, C: recognition resumes at the pause; C is whole, in its place
    feed(sentence(1.0, 3500) + quiet + sentence(1.2, 5000) + quiet)
    finals = [(r.text, r.start_ms) for r in out if isinstance(r, Result) and r.type == "final"]
    assert finals == [("1.0s from 0", 0), ("1.2s from 5000", 5000)], finals
    notices = [r for r in out if isinstance(r, Notice)]
    assert [n.type for n in notices] == ["resumed"] and notices[0].dropped_s == 1.0
    # B's last 2 s (the second that waited, and the one after), to the VAD's end of it
    assert 2.0 <= notices[0].skipped_s <= 2.4, notices
    assert stream.samples == fed and not stream.skipping


def test_a_stream_opened_mid_speech_starts_at_the_first_pause() -> None:
    from types import SimpleNamespace

    from jbcalling.stt.events import Result

    settings = SttSettings(partial_interval_ms=0, stable_partial_quiet_ms=0)
    b = VadOfflineBackend("en", "m", Lengths(), "vad-whisper", settings,
                          vad=SimpleNamespace(create=LoudnessVad))  # type: ignore[arg-type]
    out: list[Any] = []
    stream = b.open(out.append, from_pause=True)
    loud = np.full(16000, 3000, "<i2").tobytes()
    quiet = np.zeros(16000 // 2, "<i2").tobytes()
    for pcm in (loud, quiet, loud, quiet):  # the tail of a sentence, a pause, a whole one
        for k in range(0, len(pcm), 3200):
            b.feed(stream, pcm[k:k + 3200])
            b.iterate()
    finals = [(r.text, r.start_ms) for r in out if isinstance(r, Result) and r.type == "final"]
    assert finals == [("1.0s from 0", 1500)], finals


def test_the_gateway_tells_the_room_of_a_skip_and_counts_what_it_lost() -> None:
    from prometheus_client import CollectorRegistry, Counter

    from jbcalling.gateway.speaker_stream import SpeakerStream
    from jbcalling.gateway.stt_leg import Leg

    registry = CollectorRegistry()
    said: list[Any] = []

    async def publish(room: str, event: Any) -> None:
        said.append(event)

    pipeline = SimpleNamespace(
        publish=publish, captions_busy=Counter("busy", "", registry=registry),
        audio_dropped=Counter("dropped", "", ["reason"], registry=registry))
    stream = SpeakerStream(pipeline, "room", "pid")  # type: ignore[arg-type]

    async def scenario() -> None:
        leg = Leg(1)
        await stream._result({"type": "skipped", "dropped_s": 1.0}, None, "en", leg)
        await stream._result({"type": "skipped", "dropped_s": 0.02}, None, "en", leg)  # said once
        await stream._result({"type": "resumed", "dropped_s": 1.5, "skipped_s": 0.7}, None,
                             "en", leg)

    asyncio.run(scenario())
    assert [(e.state, e.speaker) for e in said] == [("busy", "pid"), ("available", "pid")]
    assert "not captioned" in said[0].message
    assert pipeline.captions_busy._value.get() == 1
    assert pipeline.audio_dropped.labels("backlog")._value.get() == 1.5
    assert pipeline.audio_dropped.labels("to_pause")._value.get() == 0.7
    # audio the gateway drops while no stream is open for a speaker who talked (told busy):
    # the next stream starts from a pause
    assert not stream.cut
    stream.down, stream.state = True, "busy"
    stream.wanted.set()
    for _ in range(40):  # 4 s of 100 ms chunks: only the newest 3 s are kept
        stream.push(bytes(3200))
    assert stream.cut and pipeline.audio_dropped.labels("busy")._value.get() == pytest.approx(1.0)
