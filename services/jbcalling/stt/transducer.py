"""The sherpa-onnx transducer files and the options both stt engines give their recognizer
(``OnlineRecognizer`` in streaming.py, ``OfflineRecognizer`` in sherpa_offline.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jbcalling.speech.modelfiles import require
from jbcalling.stt.settings import SttSettings

FILES = ["encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt"]
SAMPLE_RATE = 16000
FEATURE_DIM = 80


def recognizer_options(model: str, folder: Path, settings: SttSettings) -> dict[str, Any]:
    """The model's files (MissingModel when one lacks) and the settings' decoding options."""
    require(model, folder, FILES)
    options: dict[str, Any] = {
        "encoder": str(folder / "encoder.onnx"), "decoder": str(folder / "decoder.onnx"),
        "joiner": str(folder / "joiner.onnx"), "tokens": str(folder / "tokens.txt"),
        "num_threads": settings.threads, "sample_rate": SAMPLE_RATE, "feature_dim": FEATURE_DIM,
        "decoding_method": settings.decoding_method}
    if settings.hotwords_file:
        options |= {"hotwords_file": settings.hotwords_file,
                    "hotwords_score": settings.hotwords_score}
    return options
