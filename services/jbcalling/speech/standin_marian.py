"""A stand-in OPUS-MT translator: a random Marian transformer in the native OPUS-MT layout.

It writes what an OPUS-MT release unpacks to (``opus.npz`` with ``special:model.yml``, a joint
vocabulary ``.yml``, ``source.spm`` / ``target.spm``, ``decoder.yml``) and converts it with
CTranslate2's own OPUS-MT converter to int8, exactly as ``docs/models.md`` converts the real
models. Sizes: ``tiny`` for tests (under a second), ``base`` for OPUS-MT base dimensions (about
74M parameters), whose cost matches a real opus-mt model.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jbcalling.speech.modelfiles import mark_standin

CORPUS_EN = [
    "Hello, how are you today?", "The meeting starts at nine in the morning.",
    "Can you hear me clearly?", "I will share my screen now.", "Thank you very much for coming.",
    "Please repeat the last sentence.", "We need to finish the report by Friday.",
    "The weather is nice in Hanoi this week.", "Let us talk about the budget.",
]
CORPUS_VI = [
    "Xin chào, hôm nay bạn khỏe không?", "Cuộc họp bắt đầu lúc chín giờ sáng.",
    "Bạn có nghe rõ tôi không?", "Bây giờ tôi sẽ chia sẻ màn hình.", "Cảm ơn bạn rất nhiều vì đã đến.",
    "Vui lòng nhắc lại câu cuối cùng.", "Chúng ta cần hoàn thành báo cáo trước thứ Sáu.",
    "Thời tiết ở Hà Nội tuần này rất đẹp.", "Chúng ta hãy nói về ngân sách.",
]


@dataclass(frozen=True)
class Dims:
    d_model: int
    layers: int
    heads: int
    ffn: int
    vocab: int


SIZES = {
    "tiny": Dims(d_model=64, layers=2, heads=4, ffn=128, vocab=0),
    "base": Dims(d_model=512, layers=6, heads=8, ffn=2048, vocab=53000),
}


def _spm(path: Path, sentences: list[str], vocab_size: int) -> list[str]:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences * 20), model_writer=model,
                                   vocab_size=vocab_size, model_type="unigram",
                                   character_coverage=1.0, hard_vocab_limit=False,
                                   minloglevel=2, num_threads=1)
    path.write_bytes(model.getvalue())
    proc = spm.SentencePieceProcessor(model_file=str(path))
    return [proc.id_to_piece(i) for i in range(proc.get_piece_size())]


def _yaml_key(token: str) -> str:
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_opus_mt(dest: Path, dims: Dims, seed: int = 0) -> None:
    """Write a random Marian model in OPUS-MT's release layout into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    src_pieces = _spm(dest / "source.spm", CORPUS_EN + CORPUS_VI, 120)
    tgt_pieces = _spm(dest / "target.spm", CORPUS_VI + CORPUS_EN, 120)
    vocab = ["</s>", "<unk>"]
    for p in src_pieces + tgt_pieces:
        if p not in vocab and p not in ("<s>",):
            vocab.append(p)
    vocab += [f"<filler{i}>" for i in range(max(0, dims.vocab - len(vocab)))]
    with open(dest / "opus.vocab.yml", "w", encoding="utf-8") as f:
        for i, tok in enumerate(vocab):
            f.write(f"{_yaml_key(tok)}: {i}\n")
    (dest / "decoder.yml").write_text("models:\n  - opus.npz\nvocabs:\n  - opus.vocab.yml\n"
                                      "  - opus.vocab.yml\nbeam-size: 4\nnormalize: 1\n")
    rng = np.random.default_rng(seed)
    d, f_ = dims.d_model, dims.ffn

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    weights: dict[str, np.ndarray] = {"Wemb": w(len(vocab), d),
                                      "decoder_ff_logit_out_b": w(1, len(vocab))}

    def attention(prefix: str) -> None:
        for name in ("q", "k", "v", "o"):
            weights[f"{prefix}_W{name}"] = w(d, d)
            weights[f"{prefix}_b{name}"] = w(1, d)
        weights[f"{prefix}_Wo_ln_scale"] = np.ones((1, d), np.float32)
        weights[f"{prefix}_Wo_ln_bias"] = np.zeros((1, d), np.float32)

    def ffn(prefix: str) -> None:
        weights[f"{prefix}_ffn_W1"], weights[f"{prefix}_ffn_b1"] = w(d, f_), w(1, f_)
        weights[f"{prefix}_ffn_W2"], weights[f"{prefix}_ffn_b2"] = w(f_, d), w(1, d)
        weights[f"{prefix}_ffn_ffn_ln_scale"] = np.ones((1, d), np.float32)
        weights[f"{prefix}_ffn_ffn_ln_bias"] = np.zeros((1, d), np.float32)

    for i in range(1, dims.layers + 1):
        attention(f"encoder_l{i}_self")
        ffn(f"encoder_l{i}")
        attention(f"decoder_l{i}_self")
        attention(f"decoder_l{i}_context")
        ffn(f"decoder_l{i}")
    config = (f"type: transformer\nenc-depth: {dims.layers}\ndec-depth: {dims.layers}\n"
              f"transformer-heads: {dims.heads}\ndim-emb: {d}\ntransformer-dim-ffn: {f_}\n"
              "transformer-ffn-activation: swish\ntransformer-preprocess: \"\"\n"
              "transformer-postprocess: dan\ntransformer-postprocess-emb: d\n"
              "transformer-postprocess-top: \"\"\ntransformer-decoder-autoreg: self-attention\n"
              "transformer-no-projection: false\ntransformer-guided-alignment-layer: last\n"
              "tied-embeddings-all: true\n")
    weights["special:model.yml"] = np.frombuffer(config.encode() + b"\0", dtype=np.int8)
    np.savez(dest / "opus.npz", **weights)  # type: ignore[arg-type]


def build(dest: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Build a converted (CTranslate2 int8) stand-in into ``dest``; return ``dest``.

    ``dest`` then holds what ``jbctl models pull`` puts in a translator's folder: the CTranslate2
    model plus ``source.spm`` and ``target.spm``.
    """
    from ctranslate2.converters.opus_mt import OpusMTConverter

    with tempfile.TemporaryDirectory(prefix="jb-opusmt-standin-") as tmp:
        raw = Path(tmp) / "opus-mt"
        write_opus_mt(raw, SIZES[size], seed)
        if dest.exists():
            shutil.rmtree(dest)
        OpusMTConverter(str(raw)).convert(str(dest), quantization="int8", force=True)
        for name in ("source.spm", "target.spm"):
            shutil.copy(raw / name, dest / name)
    mark_standin(dest, f"random-weight OPUS-MT stand-in, size {size}, seed {seed}")
    return dest
