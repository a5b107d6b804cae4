"""The translation engine: one CTranslate2 Translator (int8) + SentencePiece per direction.

Synchronous and thread-safe: the service calls :meth:`PairEngine.translate` from its executor
threads, never from the event loop. One CTranslate2 worker per translator (``inter_threads``),
each with one thread (``intra_threads=1``: on small machines 1 thread per batch is several times
faster than 2, docs/models.md); the weights are loaded once and shared by the workers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from jbcalling.speech.modelfiles import is_standin, require

FILES = ["model.bin", "config.json", "source.spm", "target.spm"]


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 2
    max_decoding_length: int = 256
    min_decoding_length: int = 0


def model_version(folder: Path) -> str:
    """A short content hash of the weights: cache keys change when the model does."""
    h = hashlib.sha256()
    with open(folder / "model.bin", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class PairEngine:
    """One translation direction, e.g. ``vi-en``."""

    def __init__(self, pair: str, model: str, folder: Path, translators: int,
                 options: DecodeOptions) -> None:
        import ctranslate2
        import sentencepiece as spm

        require(model, folder, FILES)
        self.pair = pair
        self.model = model
        self.options = options
        self.workers = translators
        self.version = model_version(folder)
        self.standin = is_standin(folder)
        self.translator = ctranslate2.Translator(str(folder), device="cpu",
                                                 inter_threads=translators, intra_threads=1)
        self.source = spm.SentencePieceProcessor(model_file=str(folder / "source.spm"))
        self.target = spm.SentencePieceProcessor(model_file=str(folder / "target.spm"))

    def translate(self, sentences: list[str]) -> list[str]:
        """Translate a batch of sentences in one CTranslate2 call (blocking)."""
        tokens = [self.source.encode(s, out_type=str) for s in sentences]
        results = self.translator.translate_batch(
            tokens, beam_size=self.options.beam_size,
            max_decoding_length=self.options.max_decoding_length,
            min_decoding_length=self.options.min_decoding_length,
            max_input_length=1024)
        return [self.target.decode(r.hypotheses[0]) for r in results]
