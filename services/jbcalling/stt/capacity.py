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
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from jbcalling.stt.backend import Backend

log = logging.getLogger("jbcalling.stt")
SAMPLE_RATE = 16000
_measured: dict[str, float] = {}  # probe key -> real-time factor, in this process


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
    """The instance's stream capacity: configured, or measured per language as workers start."""

    def __init__(self, configured: int, budget: float, max_sessions: int,
                 languages: list[str], probe_s: float = 3.0) -> None:
        self.configured, self.budget, self.max_sessions = configured, budget, max_sessions
        self.probe_s = probe_s
        self.rtf: dict[str, float] = {}
        self.waiting = set() if configured else set(languages)
        self.lock = threading.Lock()

    @property
    def source(self) -> str:
        if self.configured:
            return "configured"
        return "measuring" if self.waiting else "measured"

    @property
    def streams(self) -> int:
        """Streams admitted at most now: ``max_sessions`` until every language is measured."""
        if self.configured:
            return min(self.configured, self.max_sessions)
        with self.lock:
            if self.waiting or not self.rtf:
                return self.max_sessions
            return streams_for(max(self.rtf.values()), self.budget, self.max_sessions)

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
