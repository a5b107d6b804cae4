"""sherpa-onnx OfflineRecognizer (transducer, e.g. the Vietnamese zipformer) for VAD segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jbcalling.stt.settings import SttSettings
from jbcalling.stt.transducer import recognizer_options


class SherpaOffline:
    """``decode(list of float32 16 kHz arrays) -> list of texts``, one ``decode_streams`` call."""

    def __init__(self, model: str, folder: Path, settings: SttSettings) -> None:
        import sherpa_onnx

        self.recognizer = sherpa_onnx.OfflineRecognizer.from_transducer(
            **recognizer_options(model, folder, settings))

    def decode(self, segments: list[np.ndarray]) -> list[str]:
        streams = []
        for audio in segments:
            s = self.recognizer.create_stream()
            s.accept_waveform(16000, audio)
            streams.append(s)
        if streams:
            self.recognizer.decode_streams(streams)
        return [s.result.text.strip() for s in streams]
