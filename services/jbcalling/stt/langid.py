"""Spoken-language identification of one finished utterance: "vi" or "en".

The "I speak: detect" setting (issue 12): the VAD hands a finished utterance (16 kHz float32
mono, as in stt/offline.py) to :meth:`LanguageId.identify`, which says which recognizer should
decode it. The engine is sherpa-onnx's ``SpokenLanguageIdentification`` with a multilingual
Whisper (encoder + decoder ONNX; production: ``sherpa-onnx-whisper-tiny`` in
models/manifest.toml; dev and tests: speech/standin_whisper_lid.py). Synchronous and blocking:
call it from the backend's worker thread, never from the event loop.

Only vi and en matter. sherpa-onnx returns the winning language's code and nothing else (no
score or probability is exposed by its API), so there is no "closer of the two by score": an
utterance the model calls anything else (Whisper knows 99 languages; a short or noisy utterance
is often called something else) goes to the caller's ``fallback`` (say, the speaker's previous
utterance's language) or, without one, to the configured ``default``. :class:`Detection` keeps
what the model said (``reported``) so that this shows in logs and metrics.

Errors: :class:`~jbcalling.speech.modelfiles.MissingModel` (files missing: the message says how
to pull them); :class:`NotALanguageIdModel` (the folder holds a Whisper that cannot identify
languages: an English-only one, or one without vi or en). sherpa-onnx would end the whole process
on an English-only model or on missing metadata, so both are checked before it loads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jbcalling.speech.modelfiles import is_standin, require

SAMPLE_RATE = 16000
LANGUAGES = ("vi", "en")
FILES = ["encoder.onnx", "decoder.onnx"]
MIN_SAMPLES = SAMPLE_RATE // 10  # under 100 ms there is nothing to identify
# The encoder metadata sherpa-onnx reads; it ends the process when one is missing.
METADATA = ("n_mels", "n_text_layer", "n_text_ctx", "n_text_state", "n_vocab", "sot", "eot",
            "blank_id", "translate", "transcribe", "is_multilingual", "no_timestamps", "no_speech",
            "sot_sequence", "all_language_tokens", "all_language_codes")


class NotALanguageIdModel(Exception):
    """The model folder's Whisper cannot tell vi from en (permanent: configure another model)."""


@dataclass(frozen=True)
class Detection:
    lang: str  # "vi" or "en": the recognizer that should decode the utterance
    reported: str  # the model's own answer ("" when it gave none), e.g. "zh"
    seconds: float  # time the identification took

    @property
    def mapped(self) -> bool:
        """The model said something other than vi/en; ``lang`` is the fallback or default."""
        return self.reported != self.lang


def whisper_metadata(encoder: Path) -> dict[str, str]:
    """The encoder's metadata (sherpa-onnx's Whisper export), read without loading a session."""
    import onnx

    model = onnx.load(str(encoder), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


class LanguageId:
    """One model, loaded once; :meth:`identify` is serialized per instance."""

    def __init__(self, model: str, folder: Path, default: str = "en", threads: int = 1) -> None:
        import sherpa_onnx

        if default not in LANGUAGES:
            raise ValueError(f"language-ID default must be one of {', '.join(LANGUAGES)}, "
                             f"not {default!r}")
        require(model, folder, FILES)
        meta = whisper_metadata(folder / "encoder.onnx")
        missing = [key for key in METADATA if key not in meta]
        if missing:
            raise NotALanguageIdModel(
                f"model {model}: {folder / 'encoder.onnx'} is not a Whisper encoder exported for "
                f"sherpa-onnx (no metadata {', '.join(missing)}); pull a multilingual one such as "
                f"sherpa-onnx-whisper-tiny (`jbctl models pull sherpa-onnx-whisper-tiny`)")
        codes = meta["all_language_codes"].split(",")
        if meta["is_multilingual"] != "1" or not set(LANGUAGES) <= set(codes):
            raise NotALanguageIdModel(
                f"model {model} in {folder} is not a multilingual Whisper that knows vi and en "
                f"(is_multilingual={meta['is_multilingual']}); use a multilingual "
                f"one such as sherpa-onnx-whisper-tiny (`jbctl models pull sherpa-onnx-whisper-tiny`)")
        config = sherpa_onnx.SpokenLanguageIdentificationConfig(
            whisper=sherpa_onnx.SpokenLanguageIdentificationWhisperConfig(
                encoder=str(folder / "encoder.onnx"), decoder=str(folder / "decoder.onnx")),
            num_threads=threads, provider="cpu")
        if not config.validate():
            raise NotALanguageIdModel(f"model {model} in {folder}: sherpa-onnx rejects its files")
        self.model = model
        self.default = default
        self.standin = is_standin(folder)
        self._engine = sherpa_onnx.SpokenLanguageIdentification(config)
        self._lock = threading.Lock()

    def identify(self, audio: np.ndarray, fallback: str | None = None) -> Detection:
        """The language of one utterance (float32 in [-1, 1], 16 kHz mono, up to 30 s: Whisper
        looks at the first 30 s only). An answer other than vi/en becomes ``fallback`` if it is
        vi or en, else the default."""
        t0 = time.perf_counter()
        reported = ""
        if len(audio) >= MIN_SAMPLES:
            stream = self._engine.create_stream()
            stream.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(audio, dtype=np.float32))
            with self._lock:
                reported = self._engine.compute(stream)
        if reported in LANGUAGES:
            lang = reported
        else:
            lang = fallback if fallback is not None and fallback in LANGUAGES else self.default
        return Detection(lang=lang, reported=reported, seconds=time.perf_counter() - t0)
