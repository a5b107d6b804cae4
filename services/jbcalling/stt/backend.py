"""The recognizer interface both backends implement, and the worker thread that drives them.

The event loop only appends audio to a stream's inbox (:meth:`Backend.feed`, cheap) and reads
results from a queue; all VAD and model work happens in the backend's worker thread, which
wakes on new audio and steps every open stream at once (so the streaming backend decodes all
ready streams in one ``decode_streams`` call, and the VAD backends batch their segments).

A stream that falls behind (its audio received but not yet stepped through the recognizer
exceeds ``max_backlog_s``, whether it waits in the inbox or in a worker that falls behind) drops
what waits in its inbox and resumes at live audio: :meth:`Backend.feed` returns the seconds
dropped (the service says so: a ``skipped`` message), the worker discards the open utterance
(its middle is gone) and *skips to the next pause*: it recognizes nothing until the VAD has heard
no speech for ``RESUME_QUIET`` (then a ``resumed`` notice), so that no caption comes from audio
cut in the middle of a sentence. A client that knows its audio starts mid-speech (it dropped
audio before the stream opened) opens the stream skipping the same way. An exception inside the
worker ends the streams it was stepping with an ``error`` and keeps the worker alive.

Each worker iteration reports what it served (``served``: worker seconds, seconds of speech
stepped) for the capacity that follows the observed real-time factor (capacity.py).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jbcalling.stt.events import Notice, Result

log = logging.getLogger("jbcalling.stt")
SAMPLE_RATE = 16000
PIECE = SAMPLE_RATE // 10
# Skipping to the next pause ends when the VAD, having heard speech since the skip began, ends
# that speech (after vad_min_silence_ms of silence), or after this much audio in which it heard
# none: it reports speech only after vad_min_speech_ms (250 ms) of it, so 400 ms without a report
# hold at least 150 ms of real non-speech, a gap between words or sentences.
RESUME_QUIET = SAMPLE_RATE * 4 // 10
Emit = Callable[[Result | Notice | Exception | None], None]  # None: the stream is finished


@dataclass(eq=False)
class Stream:
    """One client's audio stream; the worker owns everything below ``inbox``."""

    emit: Emit
    inbox: list[np.ndarray] = field(default_factory=list)
    pending: int = 0  # samples in inbox
    fed: int = 0  # samples received so far (``samples`` behind it: the recognizer's lag)
    closing: bool = False
    dropped: int = 0  # samples dropped from the inbox (fell behind), not yet skipped by the worker
    samples: int = 0  # samples handed to the recognizer (or skipped over) so far
    segment: int = 0
    state: Any = None  # the backend's per-stream objects
    skipping: bool = False  # recognizing nothing until the next pause (backend.py docstring)
    skipped: int = 0  # samples passed over since the skip began
    skip_dropped: int = 0  # samples dropped from the inbox since the skip began
    quiet: int = 0  # while skipping: samples since the VAD last heard speech
    heard: bool = False  # while skipping: the VAD heard speech since the skip began
    voiced: int = 0  # samples stepped while in speech (the backend's own count of them)


class Backend(ABC):
    """A recognizer for one language. Subclasses implement :meth:`start_stream` and :meth:`step`."""

    kind = ""

    def __init__(self, lang: str, model: str, max_backlog_s: float) -> None:
        self.lang = lang
        self.model = model
        self.standin = False
        self.max_backlog = int(max_backlog_s * SAMPLE_RATE)
        self.streams: list[Stream] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.running = False
        self.busy_s = 0.0  # worker time spent stepping, for the real-time factor
        self.audio_s = 0.0
        self.voiced = 0  # samples stepped while a stream was in speech (subclasses count them)
        self.thread: threading.Thread | None = None
        # (kind, seconds) of each decode call, for the service's latency histogram
        self.observe: Callable[[str, float], None] = lambda kind, seconds: None
        # (worker seconds, seconds of speech) of each worker iteration: capacity.py
        self.served: Callable[[float, float], None] = lambda busy_s, voiced_s: None

    def start(self, first: Callable[[Backend], None] | None = None) -> threading.Event:
        """Start the worker; it runs ``first`` (the capacity probe) before any stream's audio, in
        its own thread: the recognizer is then only ever called from that thread. The event is
        set when the worker serves."""
        self.running = True
        serving = threading.Event()

        def run() -> None:
            try:
                if first is not None:
                    first(self)
            finally:
                serving.set()
            self._run()

        self.thread = threading.Thread(target=run, name=f"stt-{self.lang}", daemon=True)
        self.thread.start()
        return serving

    # -- called from the event loop -------------------------------------------------------
    def open(self, emit: Emit, from_pause: bool = False) -> Stream:
        """A new stream; ``from_pause``: its audio starts mid-speech, recognize from the first
        pause on (the gateway dropped audio before it opened)."""
        stream = Stream(emit, skipping=from_pause)
        stream.state = self.start_stream()
        with self.lock:
            self.streams.append(stream)
        return stream

    def feed(self, stream: Stream, pcm: bytes) -> float:
        """Queue ``pcm`` for the worker. Returns 0, or the seconds of audio dropped because the
        stream fell more than ``max_backlog_s`` behind: the inbox, whose place the worker then
        skips, discarding the open utterance, up to the next pause."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        dropped = 0
        with self.lock:
            # in the inbox or taken by a busy worker, not what was dropped already
            behind = stream.fed - stream.samples - stream.dropped
            if behind + len(samples) > self.max_backlog and stream.pending:
                dropped = stream.pending
                stream.inbox, stream.pending = [], 0
                stream.dropped += dropped
            stream.inbox.append(samples)
            stream.pending += len(samples)
            stream.fed += len(samples)
        self.wake.set()
        return dropped / SAMPLE_RATE

    def lag_s(self) -> float:
        """The most behind stream's audio not yet recognized (nor dropped), seconds."""
        with self.lock:
            return max((s.fed - s.samples - s.dropped for s in self.streams if not s.closing),
                       default=0) / SAMPLE_RATE

    def close(self, stream: Stream) -> None:
        """Finish the stream: its open utterance becomes a final, then ``emit(None)``."""
        with self.lock:
            stream.closing = True
        self.wake.set()

    def stop(self) -> None:
        self.running = False
        self.wake.set()
        if self.thread is not None:
            self.thread.join(10)
        with self.lock:
            left, self.streams = self.streams, []
        for s in left:
            s.emit(None)

    def real_time_factor(self) -> float:
        """Worker time per second of audio since start (0 before any audio)."""
        return self.busy_s / self.audio_s if self.audio_s else 0.0

    @property
    def active(self) -> int:
        return len(self.streams)

    @property
    def taking_audio(self) -> int:
        """Streams not yet closing: what admission counts (a stream the gateway handed over
        only finishes its last final, and must not make its successor wait)."""
        with self.lock:
            return sum(1 for s in self.streams if not s.closing)

    def cost(self, audio: np.ndarray, limit_s: float) -> tuple[float, float]:
        """(worker seconds, seconds of ``audio`` recognized) as one talking speaker's stream (the
        capacity probe, capacity.py): the backend's own steps, 100 ms at a time, then the end;
        stopped once ``limit_s`` has passed (a slow machine measures on less audio)."""
        stream = Stream(lambda item: None)
        stream.state = self.start_stream()
        t0 = time.perf_counter()
        for k in range(0, len(audio), PIECE):
            self.step([(stream, audio[k:k + PIECE], False)], True)
            if time.perf_counter() - t0 >= limit_s:
                return time.perf_counter() - t0, (k + PIECE) / SAMPLE_RATE
        self.step([(stream, None, True)], True)
        return time.perf_counter() - t0, len(audio) / SAMPLE_RATE

    # -- the worker ------------------------------------------------------------------------
    def _run(self) -> None:
        while self.running:
            self.wake.wait(0.1)
            self.wake.clear()
            self.iterate()

    def iterate(self) -> None:
        """One pass of the worker: every stream's new audio, stepped (only the worker calls it,
        and tests)."""
        with self.lock:
            work = [(s, s.inbox, s.closing, s.dropped) for s in self.streams]
            for s, _, _, _ in work:
                s.inbox, s.pending, s.dropped = [], 0, 0
        if not work:
            return
        t0, voiced = time.perf_counter(), self.voiced
        try:
            for s, _, _, dropped in work:
                if dropped:
                    self._fell_behind(s, dropped)
            self._step_in_pieces([(s, np.concatenate(chunks) if chunks else None, closing)
                                  for s, chunks, closing, _ in work])
        except Exception as exc:  # keep the worker alive; end the streams it was stepping
            log.exception("recognizer step failed", extra={"lang": self.lang})
            for s, _, _, _ in work:
                self._finish(s, exc)
        busy = time.perf_counter() - t0
        self.busy_s += busy
        self.audio_s += sum(len(c) for _, chunks, _, _ in work for c in chunks) / SAMPLE_RATE
        self.served(busy, (self.voiced - voiced) / SAMPLE_RATE)

    def _fell_behind(self, stream: Stream, dropped: int) -> None:
        """``dropped`` samples of ``stream`` were dropped unrecognized: its time goes on past
        them, its open utterance is discarded (cut), and it skips to the next pause."""
        stream.samples += dropped
        stream.state = self.restart_stream(stream)
        if not stream.skipping:
            stream.skipping, stream.skipped, stream.quiet, stream.heard = True, 0, 0, False
            stream.skip_dropped = 0
        stream.skip_dropped += dropped

    def skip(self, stream: Stream, audio: np.ndarray | None, speech: bool) -> bool:
        """While ``stream`` skips to the next pause: True when ``audio`` (already given to the
        VAD, which heard ``speech``) is still skipped; on the pause, a ``resumed`` notice with the
        audio skipped to reach it (not counting what was dropped before)."""
        if not stream.skipping:
            return False
        n = 0 if audio is None else len(audio)
        stream.skipped += n
        stream.quiet = 0 if speech else stream.quiet + n
        stream.heard = stream.heard or speech
        if speech or (not stream.heard and stream.quiet < RESUME_QUIET):
            return True
        stream.skipping = False
        stream.emit(Notice("resumed", dropped_s=round(stream.skip_dropped / SAMPLE_RATE, 2),
                           skipped_s=round(stream.skipped / SAMPLE_RATE, 2)))
        return False

    def _step_in_pieces(self, work: list[tuple[Stream, np.ndarray | None, bool]]) -> None:
        # Audio that arrived faster than real time is stepped 100 ms at a time: the VAD must see
        # small pieces to report every utterance, and an endpoint must not swallow the audio
        # after it.
        longest = max((len(a) for _, a, _ in work if a is not None), default=0)
        pieces = max(1, -(-longest // PIECE))
        for k in range(pieces):
            last = k == pieces - 1
            self.step([(s, a[k * PIECE:(k + 1) * PIECE] if a is not None and k * PIECE < len(a)
                        else None, closing and last) for s, a, closing in work], last)

    def _finish(self, stream: Stream, exc: Exception | None = None) -> None:
        with self.lock:
            if stream in self.streams:
                self.streams.remove(stream)
        if exc is not None:
            stream.emit(exc)
        stream.emit(None)

    def result(self, stream: Stream, kind: str, text: str, start: int, end: int,
               stable: bool = False) -> None:
        self.emit_result(stream, kind, text, start, end, stable, self.lang)

    @staticmethod
    def emit_result(stream: Stream, kind: str, text: str, start: int, end: int, stable: bool,
                    lang: str) -> None:
        """One result in ``lang`` (the backend's language, or the detected one for ``auto``)."""
        stream.emit(Result(kind, stream.segment, text, lang,  # type: ignore[arg-type]
                           start * 1000 // SAMPLE_RATE, end * 1000 // SAMPLE_RATE, stable))

    @abstractmethod
    def start_stream(self) -> Any:
        """The backend's per-stream state (recognizer stream, VAD, buffers)."""

    def restart_stream(self, stream: Stream) -> Any:
        """Fresh per-stream state from ``stream.samples`` on (after audio was dropped)."""
        return self.start_stream()

    @abstractmethod
    def step(self, work: list[tuple[Stream, np.ndarray | None, bool]], last: bool) -> None:
        """Take each stream's next 100 ms of audio (or None), emit results; ``_finish`` the
        closing ones. ``last``: no more audio waits (the moment for costly partials)."""
