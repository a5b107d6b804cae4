"""stt: streaming speech recognition (sherpa-onnx transducer, or VAD + offline recognizer)."""
