"""The streaming backend: sherpa-onnx OnlineRecognizer (transducer) + Silero VAD endpoints.

Audio goes into each stream's OnlineStream as it arrives; every step decodes all ready streams
in one ``decode_streams`` batch. A partial goes out whenever a stream's text changes. The
utterance ends (a final, then the recognizer stream is reset) when the VAD sees the end of
speech (the main signal, ``vad_min_silence_ms``) or the recognizer's own endpoint rule fires
(the second signal: trailing silence after text, or the longest utterance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbcalling.speech.modelfiles import is_standin
from jbcalling.stt.backend import SAMPLE_RATE, Backend, Stream
from jbcalling.stt.settings import SttSettings
from jbcalling.stt.transducer import recognizer_options
from jbcalling.stt.vad import VadFactory


@dataclass(eq=False)
class _State:
    stream: Any
    vad: Any
    text: str = ""
    start: int = 0  # first sample of the open utterance
    base: int = 0  # stream sample index of the VAD's first sample (audio dropped before it)


class StreamingBackend(Backend):
    kind = "streaming"

    def __init__(self, lang: str, model: str, folder: Path, settings: SttSettings,
                 vad: VadFactory) -> None:
        import sherpa_onnx

        self.recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
            **recognizer_options(model, folder, settings), enable_endpoint_detection=True,
            rule1_min_trailing_silence=2.4,
            rule2_min_trailing_silence=settings.endpoint_trailing_silence_s,
            rule3_min_utterance_length=settings.max_utterance_s)
        self.vad_factory = vad
        super().__init__(lang, model, settings.max_backlog_s)
        self.standin = is_standin(folder)

    def start_stream(self) -> _State:
        return _State(self.recognizer.create_stream(), self.vad_factory.create())

    def restart_stream(self, stream: Stream) -> _State:
        st: _State = stream.state
        if st.text:  # the cut utterance's caption is closed, empty
            self.result(stream, "final", "", st.start, st.start)
            stream.segment += 1
        return _State(self.recognizer.create_stream(), self.vad_factory.create(),
                      start=stream.samples, base=stream.samples)

    def step(self, work: list[tuple[Stream, np.ndarray | None, bool]], last: bool) -> None:
        rec = self.recognizer
        skipped: list[Stream] = []
        for s, audio, closing in work:
            st: _State = s.state
            if s.skipping:  # to the next pause: only the VAD hears the audio (backend.py)
                if audio is not None:
                    st.vad.accept_waveform(audio)
                    s.samples += len(audio)
                self.skip(s, audio, bool(st.vad.is_speech_detected()) and not closing)
                while not st.vad.empty():
                    st.vad.pop()
                st.start = s.samples
                skipped.append(s)
                continue
            if audio is not None:
                st.stream.accept_waveform(SAMPLE_RATE, audio)
                st.vad.accept_waveform(audio)
                s.samples += len(audio)
                self.voiced += len(audio)  # a transducer decodes all of it, speech or not
                s.voiced += len(audio)
            if closing:
                st.stream.input_finished()
                st.vad.flush()
        for s in skipped:
            if s.closing:
                self._finish(s)
        work = [w for w in work if w[0] not in skipped]
        ready = [s.state.stream for s, _, _ in work if rec.is_ready(s.state.stream)]
        t0 = time.perf_counter()
        while ready:
            rec.decode_streams(ready)
            ready = [r for r in ready if rec.is_ready(r)]
        self.observe("batch", time.perf_counter() - t0)
        for s, _, closing in work:
            st = s.state
            speech_end = None
            while not st.vad.empty():
                seg = st.vad.front
                speech_end = st.base + seg.start + len(seg.samples)
                st.vad.pop()
            text = rec.get_result(st.stream).strip()
            if text and text != st.text:
                st.text = text
                self.result(s, "partial", text, st.start, s.samples)
            if speech_end is not None or closing or rec.is_endpoint(st.stream):
                if text:
                    self.result(s, "final", text, st.start, speech_end or s.samples)
                    s.segment += 1
                rec.reset(st.stream)
                st.text, st.start = "", s.samples
            if closing:
                self._finish(s)
