"""sherpa-onnx OfflineRecognizer (transducer, e.g. the Vietnamese zipformer) for VAD segments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jbcalling.speech.modelfiles import require
from jbcalling.stt.settings import SttSettings

FILES = ["encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt"]


class SherpaOffline:
    """``decode(list of float32 16 kHz arrays) -> list of texts``, one ``decode_streams`` call."""

    def __init__(self, model: str, folder: Path, settings: SttSettings) -> None:
        import sherpa_onnx

        require(model, folder, FILES)
        extra: dict[str, Any] = {}
        if settings.hotwords_file:
            extra = {"hotwords_file": settings.hotwords_file,
                     "hotwords_score": settings.hotwords_score}
        self.recognizer = sherpa_onnx.OfflineRecognizer.from_transducer(
            encoder=str(folder / "encoder.onnx"), decoder=str(folder / "decoder.onnx"),
            joiner=str(folder / "joiner.onnx"), tokens=str(folder / "tokens.txt"),
            num_threads=settings.threads, sample_rate=16000, feature_dim=80,
            decoding_method=settings.decoding_method, **extra)

    def decode(self, segments: list[np.ndarray]) -> list[str]:
        streams = []
        for audio in segments:
            s = self.recognizer.create_stream()
            s.accept_waveform(16000, audio)
            streams.append(s)
        if streams:
            self.recognizer.decode_streams(streams)
        return [s.result.text.strip() for s in streams]
