"""How many streams this instance recognizes in real time, measured on its own hardware.

At start-up, before it serves any audio, the service decodes ``capacity_probe_s`` of a
synthetic voiced signal per language (for at most about that long in wall time: a slow machine
measures on the part it got through) the way it decodes one talking speaker (the backend's own schedule:
``Backend.cost``: partials, then the final) and times it: worker seconds per second of speech,
the real-time factor of one stream. The instance's capacity is the number of such streams that
fit in ``capacity_budget`` worker seconds per second for its most costly language (the languages'
workers share the instance's cores), at least 1 and at most ``max_sessions``. A configured
``capacity_streams`` skips the measurement. A process measures each (model, settings) once: the
same hardware gives the same answer, and tests start many apps in one process.

The probe signal is synthetic (a gliding 120 Hz voice with harmonics, syllables at 4 Hz) so that
no recording ships with the service; recognizers' decode time depends mostly on the audio's
length, not its words (docs/decisions.md, "stt capacity").

While serving, the measured figure follows what the workers observe (:meth:`Capacity.update`,
once a second): over the last ``window_s`` the worker seconds spent per second of speech stepped
(the observed real-time factor, which includes whatever else takes the cores meanwhile) gives
``budget / factor`` streams, and a lag (audio received and not yet recognized) above ``lag_s``
at three ticks in a row says the instance is over capacity whatever the factor says. Down at once
(to the factor's figure, or one stream fewer than are open when lagging; then no other step down
for ``window_s``, so that the window sees the change); up one stream at a time, only after
``3 * window_s`` without a change or a lag above ``lag_s / 2``, and only to what the factor
allows with a 20 % margin (the hysteresis). With no speech to observe the figure holds; an idle
instance (no stream open) returns one step at a time to its start-up measurement.

The figure decides admission (new streams beyond it are refused ``busy``). Open streams are
closed only when the instance is over capacity in fact, i.e. lagging, and only talking ones
(``over``: the talking streams it keeps, one fewer than talk; stt/admission.py closes the newest
beyond it): a quiet stream costs next to nothing, so closing it would not help, and the factor
counts every stream as a speaker talking non-stop while speakers pause (and clients other than
the gateway, which opens streams only for people who talk, may hold quiet ones).
One talking stream that lags alone is not closed: it skips (stt/backend.py). A configured
capacity does not move.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

import numpy as np

from jbcalling.stt.backend import Backend

log = logging.getLogger("jbcalling.stt")
SAMPLE_RATE = 16000
_measured: dict[str, float] = {}  # probe key -> real-time factor, in this process
MIN_VOICED_S = 2.0  # speech in the window below which its factor says nothing
LAG_TICKS = 3  # updates in a row with a lag above lag_s: over capacity
RAISE_MARGIN = 0.8  # a step up needs the factor to allow one stream more with this much budget


def probe_audio(seconds: float) -> np.ndarray:
    """A deterministic voiced signal of ``seconds``, float32 in [-1, 1]."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    voice = voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    noise = np.random.default_rng(0).standard_normal(len(t))
    return (0.2 * voice / max(float(np.abs(voice).max()), 1e-9) + 0.01 * noise).astype(np.float32)


def streams_for(rtf: float, budget: float, max_sessions: int) -> int:
    """Streams of real-time factor ``rtf`` that fit in ``budget`` worker seconds per second."""
    if rtf <= 0:
        return max_sessions
    return max(1, min(max_sessions, math.floor(budget / rtf)))


class Capacity:
    """The instance's stream capacity: configured, or measured per language as workers start,
    then following the real-time factor observed while serving."""

    def __init__(self, configured: int, budget: float, max_sessions: int,
                 languages: list[str], probe_s: float = 3.0, window_s: float = 5.0,
                 lag_s: float = 1.5) -> None:
        self.configured, self.budget, self.max_sessions = configured, budget, max_sessions
        self.probe_s, self.window_s, self.lag_s = probe_s, window_s, lag_s
        self.rtf: dict[str, float] = {}
        self.waiting = set() if configured else set(languages)
        self.lock = threading.Lock()
        self.live: int | None = None  # the figure once observation moved it
        self.changed_at = -math.inf  # monotonic time of its last change
        self.work: deque[tuple[float, float, float]] = deque()  # (time, busy s, speech s)
        self.lags: deque[float] = deque(maxlen=LAG_TICKS)
        self.observed_rtf: float | None = None
        self.over: int | None = None  # set by a lag verdict: the talking streams to keep

    @property
    def source(self) -> str:
        if self.configured:
            return "configured"
        if self.waiting:
            return "measuring"
        return "measured at start" if self.live is None else "observed"

    @property
    def start_streams(self) -> int:
        """The start-up measurement's figure (``max_sessions`` until every language has one)."""
        with self.lock:
            if self.waiting or not self.rtf:
                return self.max_sessions
            return streams_for(max(self.rtf.values()), self.budget, self.max_sessions)

    @property
    def streams(self) -> int:
        """Streams admitted at most now."""
        if self.configured:
            return min(self.configured, self.max_sessions)
        return self.start_streams if self.live is None or self.waiting else self.live

    def served(self, busy_s: float, voiced_s: float, now: float | None = None) -> None:
        """A worker iteration took ``busy_s`` and stepped ``voiced_s`` of speech (any thread)."""
        if self.configured:
            return
        now = time.monotonic() if now is None else now
        with self.lock:
            self.work.append((now, busy_s, voiced_s))
            while self.work[0][0] < now - self.window_s:  # kept short even without updates
                self.work.popleft()

    def update(self, now: float, open_streams: int, lag_s: float, talking: int = 0) -> int:
        """Follow the observed factor (module docstring); called once a second with the streams
        taking audio, the most behind one's lag and how many of them talked in the window.
        Returns the figure."""
        self.over = None
        if self.configured or self.waiting:
            return self.streams
        with self.lock:
            while self.work and self.work[0][0] < now - self.window_s:
                self.work.popleft()
            busy = sum(b for _, b, _ in self.work)
            voiced = sum(v for _, _, v in self.work)
        self.lags.append(lag_s)
        current = self.streams
        rtf = self.observed_rtf = busy / voiced if voiced >= MIN_VOICED_S else None
        lagging = len(self.lags) == LAG_TICKS and min(self.lags) > self.lag_s
        target = current
        if rtf is not None:
            target = min(target, streams_for(rtf, self.budget, self.max_sessions))
        since = now - self.changed_at
        if lagging and since >= self.window_s:  # over capacity in fact: one stream fewer
            self.over = talking - 1 if talking >= 2 else None
            return self._set(now, min(target, current, max(1, open_streams - 1)),
                             "lower (lagging)", rtf, lag_s)
        if target < current and since >= self.window_s:
            return self._set(now, target, "lower", rtf, lag_s)
        calm = max(self.lags, default=0.0) <= self.lag_s / 2
        if target >= current and calm and since >= 3 * self.window_s:
            if rtf is not None:
                allowed = streams_for(rtf, self.budget * RAISE_MARGIN, self.max_sessions)
            else:  # nothing to observe: an idle instance returns to its start-up figure
                allowed = self.start_streams if open_streams == 0 else current
            if allowed > current:
                return self._set(now, current + 1, "raise", rtf, lag_s)
        return current

    def _set(self, now: float, streams: int, how: str, rtf: float | None, lag_s: float) -> int:
        before, self.live, self.changed_at = self.streams, streams, now
        self.lags.clear()  # the next lag verdict on ticks after the change
        log.info("stt capacity observed", extra={
            "change": how, "capacity_streams": streams, "before": before, "lag_s": round(lag_s, 2),
            "observed_real_time_factor": None if rtf is None else round(rtf, 4)})
        return streams

    def measured(self, lang: str, rtf: float) -> None:
        with self.lock:
            self.rtf[lang] = rtf
            self.waiting.discard(lang)
        log.info("stt capacity measured", extra={"lang": lang, "real_time_factor": round(rtf, 4),
                                                  "capacity_streams": self.streams})

    def failed(self, lang: str) -> None:
        """The probe failed: this language does not limit the capacity (max_sessions does)."""
        with self.lock:
            self.waiting.discard(lang)

    def probe(self, backend: Backend, key: object = None) -> None:
        """Measure one stream's cost on ``backend`` (before it serves); ``key``: what makes the
        cost (model, settings), measured once per process."""
        known = _measured.get(repr((key, self.probe_s))) if key is not None else None
        if known is not None:
            self.measured(backend.lang, known)
            return
        try:
            audio = probe_audio(self.probe_s)
            # warm-up (a model's first decode is slower): one partial's decode, or 0.5 s of steps
            backend.cost(audio[:SAMPLE_RATE // 2], 0.0)
            seconds, heard = backend.cost(audio, self.probe_s)
            rtf = seconds / heard
            if key is not None:
                _measured[repr((key, self.probe_s))] = rtf
        except Exception:
            log.exception("capacity probe failed; max_sessions limits", extra={
                "lang": backend.lang})
            self.failed(backend.lang)
            return
        self.measured(backend.lang, rtf)
