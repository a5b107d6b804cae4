"""The synthesis engine: Piper voices (VITS in ONNX Runtime) with Piper's espeak-ng phonemizer.

Synchronous: the service runs :meth:`Voice.sentences` step by step in its executor, one sentence
per step, so the first audio leaves as soon as the first sentence is synthesized (the first
sentence is cut at its first comma, which the voice pauses at anyway, to make that sooner). Piper's espeak
bridge keeps the selected espeak voice in global state, so phonemization (a few ms) is
serialized across threads; the neural synthesis runs in parallel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jbcalling.speech.modelfiles import is_standin, require

_PHONEMIZE = threading.Lock()
MIN_CHUNK = 6  # phonemes: shorter pieces sound clipped


class Voice:
    """One Piper voice for one language."""

    def __init__(self, lang: str, model: str, folder: Path, onnx_threads: int) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        onnx_file, config_file = f"{model}.onnx", f"{model}.onnx.json"
        require(model, folder, [onnx_file, config_file])
        config = PiperConfig.from_dict(json.loads((folder / config_file).read_text("utf-8")))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = onnx_threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(folder / onnx_file), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        self.lang = lang
        self.model = model
        self.standin = is_standin(folder)
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = int(config.sample_rate)

    def phonemize(self, text: str) -> list[list[str]]:
        with _PHONEMIZE:
            return [p for p in self.voice.phonemize(text) if p]

    def chunks(self, text: str) -> list[list[str]]:
        """The phoneme chunks synthesized one by one: the sentences, the first one cut after its
        first comma when both parts are long enough, so that the first audio comes sooner."""
        sentences = self.phonemize(text)
        if sentences:
            first = sentences[0]
            cut = next((i for i, p in enumerate(first) if p == ","), -1)
            if cut >= MIN_CHUNK and len(first) - cut - 1 >= MIN_CHUNK:
                rest = first[cut + 1:]
                while rest and rest[0] == " ":
                    rest = rest[1:]
                sentences[:1] = [first[:cut + 1], rest]
        return sentences

    def sentences(self, text: str, rate: float = 1.0) -> Iterator[bytes]:
        """PCM s16le mono at :attr:`sample_rate`, one chunk (:meth:`chunks`) per item (blocking)."""
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(length_scale=self.voice.config.length_scale / rate)
        for phonemes in self.chunks(text):
            ids = self.voice.phonemes_to_ids(phonemes)
            audio = np.asarray(self.voice.phoneme_ids_to_audio(ids, syn), dtype=np.float32)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            if peak > 1e-8:
                audio = audio / peak
            yield (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
