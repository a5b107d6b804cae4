"""Silero VAD through sherpa-onnx's VoiceActivityDetector: one detector per stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jbcalling.speech.modelfiles import require
from jbcalling.stt.settings import SttSettings

SAMPLE_RATE = 16000


class VadFactory:
    def __init__(self, settings: SttSettings) -> None:
        folder: Path = settings.models_dir / settings.vad_model
        require(settings.vad_model, folder, ["silero_vad.onnx"])
        import sherpa_onnx

        config = sherpa_onnx.VadModelConfig()
        config.silero_vad.model = str(folder / "silero_vad.onnx")
        config.silero_vad.threshold = settings.vad_threshold
        config.silero_vad.min_silence_duration = settings.vad_min_silence_ms / 1000
        config.silero_vad.min_speech_duration = settings.vad_min_speech_ms / 1000
        config.silero_vad.max_speech_duration = settings.max_utterance_s
        config.silero_vad.window_size = 512
        config.sample_rate = SAMPLE_RATE
        config.num_threads = 1
        self.config = config
        self.buffer_s = settings.max_utterance_s + 5

    def create(self) -> Any:
        import sherpa_onnx

        return sherpa_onnx.VoiceActivityDetector(self.config, buffer_size_in_seconds=self.buffer_s)
