"""The VAD-segmented backend: Silero VAD cuts utterances, an offline recognizer decodes them.

This is what serves Vietnamese (the published Vietnamese zipformers are offline models) and
Whisper models. Each step feeds every stream's VAD; utterances the VAD closed are decoded as
finals in one batch; streams still in speech get a partial by re-decoding their open utterance
``partial_first_ms`` after the VAD heard speech begin, then every ``partial_interval_ms`` of new
audio (stretched by twice the last partial's decode time, so that a final rarely waits behind a
partial), after the finals, and only when no final waits. When the speaker has been quiet for
``stable_partial_quiet_ms`` while the VAD still waits for its silence to end the utterance, a
*stable* partial is decoded at once; if only quiet follows, the final reuses its text instead of
decoding again (the final then leaves as soon as the VAD closes the utterance), and the gateway
can translate the stable partial before the final.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from jbcalling.stt.backend import SAMPLE_RATE, Backend, Stream
from jbcalling.stt.settings import SttSettings
from jbcalling.stt.vad import VadFactory

LOOKBACK = SAMPLE_RATE // 2  # audio kept before the VAD says "speech", for partials
QUIET_FLOOR = 0.003  # RMS (about -50 dBFS) under which audio counts as quiet


class Decoder(Protocol):
    def decode(self, segments: list[np.ndarray]) -> list[str]: ...


@dataclass(eq=False)
class _State:
    vad: Any
    chunks: list[np.ndarray] = field(default_factory=list)
    first: int = 0  # stream sample index of chunks[0]
    speaking: bool = False
    open_start: int = 0
    next_partial: int = 0
    partial_sent: bool = False  # the open segment had a partial: it must get a final
    peak: float = 0.0  # loudest 100 ms of the open segment (RMS)
    quiet: int = 0  # samples of quiet at the end of the open segment
    stable_due: bool = False  # quiet long enough: decode a stable partial now
    stable_text: str | None = None  # the stable partial's text, while only quiet followed it
    base: int = 0  # stream sample index of the VAD's first sample (audio dropped before it)


class VadOfflineBackend(Backend):
    def __init__(self, lang: str, model: str, decoder: Decoder, kind: str, settings: SttSettings,
                 vad: VadFactory, standin: bool = False) -> None:
        self.decoder = decoder
        self.kind = kind
        self.vad_factory = vad
        self.partial_every = settings.partial_interval_ms * SAMPLE_RATE // 1000
        self.first_partial = min(settings.partial_first_ms * SAMPLE_RATE // 1000, self.partial_every)
        self.stable_after = settings.stable_partial_quiet_ms * SAMPLE_RATE // 1000
        super().__init__(lang, model, settings.max_backlog_s)
        self.standin = standin

    def start_stream(self) -> _State:
        return _State(self.vad_factory.create())

    def restart_stream(self, stream: Stream) -> _State:
        st: _State = stream.state
        if st.partial_sent:  # the cut utterance's caption is closed, empty (see step)
            self.result(stream, "final", "", st.open_start, st.open_start)
            stream.segment += 1
        new = self.start_stream()
        new.base = new.first = new.open_start = stream.samples
        return new

    def _audio(self, st: _State, start: int, end: int) -> np.ndarray:
        audio = np.concatenate(st.chunks) if st.chunks else np.zeros(0, np.float32)
        return audio[max(0, start - st.first):max(0, end - st.first)]

    def step(self, work: list[tuple[Stream, np.ndarray | None, bool]], last: bool) -> None:
        finals: list[tuple[Stream, int, np.ndarray]] = []
        for s, audio, closing in work:
            st: _State = s.state
            if audio is not None:
                st.vad.accept_waveform(audio)
                st.chunks.append(audio)
                s.samples += len(audio)
            if closing:
                st.vad.flush()
            if s.skipping:  # to the next pause: the speech heard meanwhile is never decoded
                self.skip(s, audio, bool(st.vad.is_speech_detected()) and not closing)
                while not st.vad.empty():
                    st.vad.pop()
                st.speaking = False
                self._trim(st, s.samples - LOOKBACK)
                continue
            while not st.vad.empty():
                seg = st.vad.front
                finals.append((s, st.base + int(seg.start),
                               np.asarray(seg.samples, dtype=np.float32)))
                st.vad.pop()
            speaking = st.vad.is_speech_detected() and not closing
            if speaking and audio is not None:
                self.voiced += len(audio)
                s.voiced += len(audio)
            if speaking and not st.speaking:
                st.open_start = max(0, s.samples - LOOKBACK)
                # the first partial early: it is what shows that someone is being heard
                st.next_partial = s.samples + self.first_partial
                st.peak, st.quiet, st.stable_text = 0.0, 0, None
            if speaking and audio is not None and len(audio):
                self._loudness(st, audio)
            st.speaking = speaking
            keep_from = st.open_start if speaking else s.samples - LOOKBACK
            self._trim(st, keep_from)
        if finals:
            t0 = time.perf_counter()
            # A stable partial followed by nothing but quiet already decoded all of the speech:
            # its text is the final, with no second decode.
            todo = [(s, a) for s, _, a in finals if s.state.stable_text is None]
            decoded = iter(self._decode([s for s, _ in todo], [a for _, a in todo], True)
                           if todo else [])
            texts = [s.state.stable_text if s.state.stable_text is not None else next(decoded)
                     for s, _, _ in finals]
            self.observe("final", time.perf_counter() - t0)
            for (s, start, audio), text in zip(finals, texts, strict=True):
                s.state.stable_text = None
                # A segment whose partials were shown gets a final even if empty, so that a
                # client can close its caption.
                if text or s.state.partial_sent:
                    self.result(s, "final", text, start, start + len(audio))
                    s.segment += 1
                s.state.open_start = start + len(audio)
                s.state.partial_sent = False
        elif self.partial_every and last:
            due = [s for s, _, _ in work if s.state.speaking and
                   (s.samples >= s.state.next_partial or s.state.stable_due)]
            if due:
                t0 = time.perf_counter()
                texts = self._decode(due, [self._audio(s.state, s.state.open_start, s.samples)
                                           for s in due], False)
                # A partial must not make the next final wait: leave the worker idle at least
                # twice as long as this decode took before the next partial.
                self.observe("partial", time.perf_counter() - t0)
                rest = int(2 * (time.perf_counter() - t0) * SAMPLE_RATE)
                for s, text in zip(due, texts, strict=True):
                    s.state.next_partial = s.samples + self.partial_every + rest
                    stable, s.state.stable_due = s.state.stable_due, False
                    if stable:
                        s.state.stable_text = text
                    if text:
                        self.result(s, "partial", text, s.state.open_start, s.samples, stable)
                        s.state.partial_sent = True
        for s, _, closing in work:
            if closing:
                self._finish(s)

    def _decode(self, streams: list[Stream], audios: list[np.ndarray], final: bool) -> list[str]:
        """The texts of ``audios`` (one per stream in ``streams``; ``final``: whole utterances,
        else open ones for partials), in one batch."""
        return self.decoder.decode(audios)

    def cost(self, audio: np.ndarray, limit_s: float) -> tuple[float, float]:
        """One talking speaker's decodes (see Backend.cost), without the VAD (the probe signal
        need not sound like speech to it): the partials as :meth:`step` schedules them, then the
        final; past ``limit_s``, the audio the partials reached counts."""
        t0 = time.perf_counter()
        n = self.first_partial if self.partial_every else len(audio)
        while n < len(audio):
            t = time.perf_counter()
            self.decoder.decode([audio[:n]])
            if time.perf_counter() - t0 >= limit_s:
                return time.perf_counter() - t0, n / SAMPLE_RATE
            n += self.partial_every + int(2 * (time.perf_counter() - t) * SAMPLE_RATE)
        self.decoder.decode([audio])
        return time.perf_counter() - t0, len(audio) / SAMPLE_RATE

    def _loudness(self, st: _State, audio: np.ndarray) -> None:
        """Quiet (20 dB under the segment's peak) for ``stable_partial_quiet_ms`` while the VAD
        still says speech: the speaker probably finished; a partial now is likely the final."""
        rms = float(np.sqrt(np.mean(np.square(audio))))
        st.peak = max(st.peak, rms)
        if rms > max(QUIET_FLOOR, 0.1 * st.peak):
            st.quiet, st.stable_text, st.stable_due = 0, None, False
            return
        before, st.quiet = st.quiet, st.quiet + len(audio)
        if self.stable_after and before < self.stable_after <= st.quiet:
            st.stable_due = True

    @staticmethod
    def _trim(st: _State, keep_from: int) -> None:
        while st.chunks and st.first + len(st.chunks[0]) < keep_from:
            st.first += len(st.chunks.pop(0))
