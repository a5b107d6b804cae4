"""``lang=auto``: "I speak: detect". Each utterance's language is identified, then that language's
recognizer decodes it; every result carries the language it was decoded in.

The VAD path is VadOfflineBackend's own (stt/offline.py), with one backend and one worker thread
for the auto streams and their own recognizers (one per language, built for this backend: a
recognizer is only ever called from the thread that owns it). Where the identification runs
(stt/langid.py, 0.1-0.3 s for a few seconds of audio on one thread):

- the first partial of an utterance: on the audio so far, falling back to the stream's last
  language when the model says neither vi nor en; the partials of that utterance keep it;
- the final: on the whole utterance (the partial's language as the fallback), so a final may
  correct the partials' language; a final that reuses a stable partial's text keeps its language.

Needs both languages on VAD backends (``vad-whisper`` or ``vad-sherpa``): a streaming transducer
decodes as the audio comes and cannot wait for an utterance's language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jbcalling.stt.backend import Stream
from jbcalling.stt.langid import LanguageId
from jbcalling.stt.offline import Decoder, VadOfflineBackend, _State
from jbcalling.stt.settings import SttSettings
from jbcalling.stt.vad import VadFactory


@dataclass(eq=False)
class _DetectState(_State):
    last: str = ""  # the stream's last utterance's language (the fallback)
    current: str = ""  # the open utterance's language, once its first partial identified it


class DetectingBackend(VadOfflineBackend):
    def __init__(self, decoders: dict[str, Decoder], langid: LanguageId, settings: SttSettings,
                 vad: VadFactory, standin: bool) -> None:
        self.decoders = decoders
        self.langid = langid
        model = "+".join(f"{lang}:{settings.languages[lang]}" for lang in sorted(decoders))
        # cost() (the capacity probe) measures with the English recognizer
        super().__init__("auto", model, decoders.get("en") or next(iter(decoders.values())),
                         "vad-detect", settings, vad, standin)

    def start_stream(self) -> _DetectState:
        return _DetectState(self.vad_factory.create(), last=self.langid.default)

    def restart_stream(self, stream: Stream) -> _DetectState:
        last = stream.state.current or stream.state.last
        new = super().restart_stream(stream)
        assert isinstance(new, _DetectState)
        new.last = last
        return new

    def _decode(self, streams: list[Stream], audios: list[np.ndarray], final: bool) -> list[str]:
        langs = []
        for s, audio in zip(streams, audios, strict=True):
            st: _DetectState = s.state
            if final or not st.current:
                st.current = self.langid.identify(audio, fallback=st.current or st.last).lang
            langs.append(st.current)
        texts = [""] * len(audios)
        for lang in set(langs):
            picked = [i for i, lg in enumerate(langs) if lg == lang]
            for i, text in zip(picked, self.decoders[lang].decode([audios[i] for i in picked]),
                               strict=True):
                texts[i] = text
        return texts

    def result(self, stream: Stream, kind: str, text: str, start: int, end: int,
               stable: bool = False) -> None:
        st: _DetectState = stream.state
        lang = st.current or st.last
        self.emit_result(stream, kind, text, start, end, stable, lang)
        if kind == "final":
            st.last, st.current = lang, ""
