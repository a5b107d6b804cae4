"""Whisper in CTranslate2 format: an offline decoder for VAD segments (batched, blocking).

The model folder is a CTranslate2 conversion (``model.bin``, ``config.json``, ``tokenizer.json``,
``vocabulary.*``). Whisper's encoder sees 30 s windows: a segment is padded to 30 s, so one
decode costs the same for 1 s or 15 s of speech. CTranslate2 accepts shorter windows
(``whisper_window_s``): several times faster, but Whisper then tends to repeat short
utterances (measured in docs/speech.md), so 30 s stays the default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jbcalling.speech.modelfiles import require
from jbcalling.stt.features import log_mel

FILES = ["model.bin", "config.json", "tokenizer.json"]
WINDOW_FRAMES = 3000


class WhisperCt2:
    """``decode(list of float32 16 kHz arrays) -> list of texts``, one batch call."""

    def __init__(self, model: str, folder: Path, lang: str, threads: int, window_s: int = 30,
                 compute_type: str = "default", no_repeat_ngram: int = 0) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        require(model, folder, FILES)
        self.model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type=compute_type,
                                                intra_threads=threads, inter_threads=1)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.n_mels = self.model.n_mels
        self.window_frames = window_s * 100
        self.no_repeat_ngram = no_repeat_ngram
        prompt = ["<|startoftranscript|>"]
        if self.model.is_multilingual:
            prompt += [f"<|{lang}|>", "<|transcribe|>"]
        prompt.append("<|notimestamps|>")
        self.prompt = [self.tokenizer.token_to_id(t) for t in prompt]
        eot = self.tokenizer.token_to_id("<|endoftext|>")
        self.first_special = eot if eot is not None else 1 << 30

    def decode(self, segments: list[np.ndarray]) -> list[str]:
        import ctranslate2

        if not segments:
            return []
        longest = max(len(s) for s in segments) / 16000
        # A window shorter than 30 s must still hold the longest segment and a second of silence.
        frames = min(WINDOW_FRAMES, max(self.window_frames, int(longest + 1.99) * 100))
        feats = np.stack([log_mel(s, self.n_mels, frames) for s in segments])
        # Speech is about 3 tokens a second: a cap of 10 + 6/s stops a repetition loop early.
        results = self.model.generate(ctranslate2.StorageView.from_array(feats),
                                      [self.prompt] * len(segments), beam_size=1,
                                      max_length=min(224, int(10 + 6 * longest)),
                                      suppress_blank=True,
                                      no_repeat_ngram_size=self.no_repeat_ngram)
        out = []
        for r in results:
            ids = [i for i in r.sequences_ids[0] if i < self.first_special]
            out.append(trim_repeat(self.tokenizer.decode(ids).strip()))
        return out


def trim_repeat(text: str) -> str:
    """Cut Whisper's loop on a short window: text after a sentence end that only repeats words
    of what came before ("Yes. Yes.", "Can you hear me now? Can you", "... next week. Next
    week") is dropped. A repeat inside a sentence ("bye bye") is left alone: the first copy must
    end with . ? or !"""
    words = text.split()
    for k in range(1, len(words)):
        head, tail = _norm(words[:k]), _norm(words[k:])
        if words[k - 1][-1] in ".?!" and (_contains(head, tail) or tail == _norm(words)[:len(tail)]):
            return " ".join(words[:k])
    return text


def _contains(seq: list[str], part: list[str]) -> bool:
    return any(seq[i:i + len(part)] == part for i in range(len(seq) - len(part) + 1))


def _norm(words: list[str]) -> list[str]:
    return [w.strip(".,?!").lower() for w in words]
