"""A stand-in multilingual Whisper for sherpa-onnx's spoken language identification.

No multilingual Whisper can be had on the test machine (docs/models.md). This writes one in the
layout of sherpa-onnx's Whisper export (``encoder.onnx``: ``mel`` (N, 80, T) ->
``n_layer_cross_k``, ``n_layer_cross_v`` (text layers, N, T/2, state) and the metadata sherpa-onnx
reads: ``n_mels``, ``n_text_layer``, ``n_text_ctx``, ``n_text_state``, ``n_vocab``, ``sot``,
``eot``, ``sot_sequence``, ``all_language_tokens``, ``all_language_codes``, ``is_multilingual``,
...; ``decoder.onnx``: ``tokens``, the self-attention caches, the cross k/v and ``offset`` ->
``logits`` (N, tokens, 51865) and the caches), with Whisper's real token numbering.
``sherpa_onnx.SpokenLanguageIdentification`` loads it and runs it end to end: its own Whisper
features, one encoder run, one decoder step from ``<|startoftranscript|>``, the highest language
logit wins.

Built to tell them apart. The encoder is a random-weight Whisper encoder (two convolutions,
``layers`` transformer layers; ``whisper-tiny`` has whisper tiny's sizes) beside one measured
acoustic feature, computed from the normalized log-mel input on voiced frames (frames whose
150-300 Hz bands are within 1.0 (40 dB) of the utterance's loudest bin and not flat):

    score = mean over voiced frames of
            [mean(bands 75-78) - mean(bands 68-71)]   (6.6-7.4 kHz against 5.0-5.8 kHz)
          + [mean(bands 0-1)   - mean(bands 3-6)]     (below 90 Hz against 150-300 Hz)
          + offset (0.5)

It is carried in channel 0 of every layer's cross ``v``; the decoder's first layer attends over
the cross k/v, and the attention context's channel 0 (= the score, whatever the attention
weights) adds ``+weight * score`` to the ``<|vi|>`` logit and ``-weight * score`` to ``<|en|>``;
the other languages' logits sit 30 below. With ``weight=0`` both logits are equal and sherpa-onnx
(which keeps the first of equal logits, in ``all_language_tokens`` order) answers ``en`` for
everything: a model not built to tell them apart.

Measured (2026-12-03, benchmarks/speech_langid_bench.py, two runs: the score by this encoder on
stt/features.py's Whisper log-mel; 8 sentences each, the Piper joe voice through tts/engine.py
resampled to 16 kHz (Piper's noise makes each run's audio differ a little), and espeak-ng
``-v vi``), raw 16 kHz audio / after a round trip through aiortc's Opus encoder and decoder
(96 kb/s, ``voip``):

    joe voice (en)     score -0.46 .. -0.34 / -0.50 .. -0.38    sherpa-onnx: en 8/8 / 8/8
    espeak-ng vi       score +0.32 .. +0.54 / +0.28 .. +0.51    sherpa-onnx: vi 8/8 / 8/8

Each term alone separated them too, in a first look at the same clips with a numpy filterbank
(raw and Opus together; high: en -0.28 .. -0.17, vi +0.10 .. +0.32; low: en -0.76 .. -0.66,
vi -0.36 .. -0.26, and after a 100 Hz high-pass en -0.82 .. -0.74, vi -0.42 .. -0.33). It is a
fact about these two synthesizers (espeak-ng's formant voice has more energy below 90 Hz and
above 6.6 kHz), not about the languages: real speech needs the real model (models/manifest.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbcalling.speech.modelfiles import mark_standin
from jbcalling.speech.standin_transducer import save_onnx

# Whisper's multilingual token numbering (n_vocab 51865): <|endoftext|>, <|startoftranscript|>,
# then one token per language in this order, then the task and special tokens.
LANGUAGES = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su",
)
N_VOCAB = 51865
EOT, SOT = 50257, 50258
FIRST_LANGUAGE = SOT + 1
TRANSLATE = FIRST_LANGUAGE + len(LANGUAGES)  # 50358
TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH, NO_TIMESTAMPS = range(TRANSLATE + 1, TRANSLATE + 6)
N_MELS, N_AUDIO_CTX, N_TEXT_CTX = 80, 1500, 448

# The feature: mel band ranges [start, end) and the voiced-frame gate (normalized log-mel units:
# 1.0 is 4 decades of power).
HIGH, UPPER_MID, LOW, MID = (75, 79), (68, 72), (0, 2), (3, 7)
VOICED_WITHIN, FLAT_BELOW = 1.0, 0.1
OFFSET, WEIGHT, OTHER_LANGUAGES = 0.5, 8.0, -30.0


@dataclass(frozen=True)
class Dims:
    state: int  # audio and text state
    layers: int  # encoder transformer layers
    heads: int
    text_layers: int


SIZES = {"tiny": Dims(state=32, layers=1, heads=2, text_layers=1),
         "whisper-tiny": Dims(state=384, layers=4, heads=6, text_layers=4)}


class _Graph:
    """Nodes and initializers of one ONNX graph, with fresh names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, *shape: int) -> str:
        return self.const(self.rng.standard_normal(shape) / np.sqrt(shape[0]))

    def op(self, kind: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def norm(self, x: str, dim: int) -> str:
        return self.op("LayerNormalization", x, self.const(np.ones(dim)), self.const(np.zeros(dim)),
                       axis=-1)

    def gelu(self, x: str) -> str:  # x * sigmoid(1.702 x): Gelu is an operator only from opset 20
        return self.op("Mul", x, self.op("Sigmoid", self.op("Mul", x, self.const(1.702))))

    def attention(self, q: str, k: str, v: str, heads: int, dim: int) -> str:
        """Scaled dot-product attention of (N, Tq, dim) over (N, Tk, dim), ``heads`` heads."""
        split = self.const([0, 0, heads, dim // heads], np.int64)
        qh, kh, vh = (self.op("Transpose", self.op("Reshape", t, split), perm=p)
                      for t, p in ((q, [0, 2, 1, 3]), (k, [0, 2, 3, 1]), (v, [0, 2, 1, 3])))
        scores = self.op("Mul", self.op("MatMul", qh, kh), self.const(1 / np.sqrt(dim // heads)))
        ctx = self.op("MatMul", self.op("Softmax", scores, axis=-1), vh)
        return self.op("Reshape", self.op("Transpose", ctx, perm=[0, 2, 1, 3]),
                       self.const([0, 0, dim], np.int64))


def _band(g: _Graph, mel: str, band: tuple[int, int]) -> str:
    part = g.op("Slice", mel, g.const([band[0]], np.int64), g.const([band[1]], np.int64),
                g.const([1], np.int64))
    return g.op("ReduceMean", part, axes=[1], keepdims=1)  # (N, 1, T)


def _score(g: _Graph, mel: str, offset: float) -> str:
    """The measured feature (module docstring), (N, 1, 1)."""
    loudest = g.op("ReduceMax", mel, axes=[1, 2], keepdims=1)
    mid = _band(g, mel, MID)
    spread = g.op("Sub", g.op("ReduceMax", mel, axes=[1], keepdims=1),
                  g.op("ReduceMin", mel, axes=[1], keepdims=1))
    voiced = g.op("Cast", g.op("And", g.op("Greater", mid, g.op("Sub", loudest,
                                                                  g.const(VOICED_WITHIN))),
                               g.op("Greater", spread, g.const(FLAT_BELOW))), to=1)
    high = g.op("Sub", _band(g, mel, HIGH), _band(g, mel, UPPER_MID))
    low = g.op("Sub", _band(g, mel, LOW), mid)
    per_frame = g.op("Add", g.op("Add", high, low), g.const(offset))
    axis = g.const([2], np.int64)
    total = g.op("ReduceSum", g.op("Mul", per_frame, voiced), axis, keepdims=1)
    count = g.op("ReduceSum", voiced, axis, keepdims=1)
    return g.op("Div", total, g.op("Max", count, g.const(1.0)))


def _encoder(d: Dims, rng: np.random.Generator, offset: float) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper

    g, s = _Graph(rng), d.state
    x = g.gelu(g.op("Conv", "mel", g.weight(s, N_MELS, 3), g.const(np.zeros(s)), pads=[1, 1]))
    x = g.gelu(g.op("Conv", x, g.weight(s, s, 3), g.const(np.zeros(s)), pads=[1, 1], strides=[2]))
    x = g.op("Transpose", x, perm=[0, 2, 1])  # (N, T/2, state)
    frames = g.op("Slice", g.op("Shape", x), g.const([1], np.int64), g.const([2], np.int64))
    pos = g.op("Slice", g.const(rng.standard_normal((N_AUDIO_CTX, s)) * 0.1),
               g.const([0], np.int64), frames)
    x = g.op("Add", x, pos)
    for _ in range(d.layers):
        h = g.norm(x, s)
        att = g.attention(g.op("MatMul", h, g.weight(s, s)), g.op("MatMul", h, g.weight(s, s)),
                          g.op("MatMul", h, g.weight(s, s)), d.heads, s)
        x = g.op("Add", x, g.op("MatMul", att, g.weight(s, s)))
        ffn = g.gelu(g.op("MatMul", g.norm(x, s), g.weight(s, 4 * s)))
        x = g.op("Add", x, g.op("MatMul", ffn, g.weight(4 * s, s)))
    x = g.norm(x, s)
    first = g.const([0], np.int64)
    ks = [g.op("Unsqueeze", g.op("MatMul", x, g.weight(s, s)), first) for _ in range(d.text_layers)]
    vs = [g.op("Unsqueeze", g.op("MatMul", x, g.weight(s, s)), first) for _ in range(d.text_layers)]
    g.nodes.append(helper.make_node("Concat", ks, ["n_layer_cross_k"], axis=0))
    v = g.op("Concat", *vs, axis=0)  # (text layers, N, T/2, state)
    # Channel 0 of every cross v carries the score, the rest is the encoder's.
    axis3 = g.const([3], np.int64)
    rest = g.op("Slice", v, g.const([1], np.int64), g.const([s], np.int64), axis3)
    zero = g.op("Mul", g.op("Slice", v, first, g.const([1], np.int64), axis3), g.const(0.0))
    score = g.op("Unsqueeze", _score(g, "mel", offset), first)  # (1, N, 1, 1)
    g.nodes.append(helper.make_node("Concat", [g.op("Add", zero, score), rest],
                                    ["n_layer_cross_v"], axis=3))
    cross: list[str | int] = [d.text_layers, "N", "T2", s]
    graph = helper.make_graph(
        g.nodes, "encoder", [helper.make_tensor_value_info("mel", TensorProto.FLOAT,
                                                           ["N", N_MELS, "T"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, cross)
         for n in ("n_layer_cross_k", "n_layer_cross_v")], g.inits)
    meta = {"model_type": "whisper-standin", "version": "1", "maintainer": "jbcalling",
            "n_mels": N_MELS, "n_audio_ctx": N_AUDIO_CTX, "n_audio_state": s,
            "n_audio_head": d.heads, "n_audio_layer": d.layers, "n_vocab": N_VOCAB,
            "n_text_ctx": N_TEXT_CTX, "n_text_state": s, "n_text_head": 1,
            "n_text_layer": d.text_layers,
            "sot_sequence": f"{SOT},{FIRST_LANGUAGE},{TRANSCRIBE}",
            "all_language_tokens": ",".join(str(FIRST_LANGUAGE + i) for i in range(len(LANGUAGES))),
            "all_language_codes": ",".join(LANGUAGES), "sot": SOT, "sot_index": 0, "eot": EOT,
            "blank_id": 220, "is_multilingual": 1, "no_speech": NO_SPEECH,
            "non_speech_tokens": "", "transcribe": TRANSCRIBE, "translate": TRANSLATE,
            "sot_prev": SOT_PREV, "sot_lm": SOT_LM, "no_timestamps": NO_TIMESTAMPS,
            "comment": "jbcalling stand-in, built to tell the joe voice from espeak-ng vi"}
    return graph, {k: str(v) for k, v in meta.items()}


def _decoder(d: Dims, rng: np.random.Generator, weight: float,
             favour: tuple[str, str]) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper

    g, s = _Graph(rng), d.state
    # Tied embedding as in Whisper, stored (state, vocab): gathered by column, the logits' matrix.
    # The language tokens' columns are zero: their logits come from the score alone.
    languages = slice(FIRST_LANGUAGE, FIRST_LANGUAGE + len(LANGUAGES))
    emb = (rng.standard_normal((s, N_VOCAB)) * 0.02).astype(np.float32)
    emb[:, languages] = 0.0
    emb_t = g.const(emb)
    x = g.op("Transpose", g.op("Gather", emb_t, "tokens", axis=1), perm=[1, 2, 0])
    count = g.op("Slice", g.op("Shape", "tokens"), g.const([1], np.int64), g.const([2], np.int64))
    pos = g.op("Slice", g.const(rng.standard_normal((N_TEXT_CTX, s)) * 0.01), "offset",
               g.op("Add", "offset", count))
    x = g.op("Add", x, pos)
    language_ctx = ""
    for i in range(d.text_layers):
        layer = g.const(i, np.int64)
        k = g.op("Gather", "n_layer_cross_k", layer, axis=0)
        v = g.op("Gather", "n_layer_cross_v", layer, axis=0)
        ctx = g.attention(g.op("MatMul", g.norm(x, s), g.weight(s, s)), k, v, 1, s)
        if i == 0:
            language_ctx = g.op("Slice", ctx, g.const([0], np.int64), g.const([1], np.int64),
                                g.const([2], np.int64))  # (N, tokens, 1): the score
        x = g.op("Add", x, g.op("MatMul", ctx, g.weight(s, s)))
    bias = np.zeros(N_VOCAB, np.float32)
    direction = np.zeros(N_VOCAB, np.float32)
    bias[languages] = OTHER_LANGUAGES
    for sign, code in zip((1.0, -1.0), favour, strict=True):
        token = FIRST_LANGUAGE + LANGUAGES.index(code)
        bias[token], direction[token] = 0.0, sign * weight
    logits = g.op("MatMul", g.norm(x, s), emb_t)
    logits = g.op("Add", g.op("Add", logits, g.const(bias)),
                  g.op("Mul", language_ctx, g.const(direction)))
    g.nodes += [helper.make_node("Identity", [f"in_n_layer_self_{t}_cache"],
                                 [f"out_n_layer_self_{t}_cache"]) for t in "kv"]
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    cache: list[str | int] = [d.text_layers, "N", N_TEXT_CTX, s]
    cross: list[str | int] = [d.text_layers, "N", "T2", s]
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "decoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", "n_tokens"]),
         helper.make_tensor_value_info("in_n_layer_self_k_cache", f32, cache),
         helper.make_tensor_value_info("in_n_layer_self_v_cache", f32, cache),
         helper.make_tensor_value_info("n_layer_cross_k", f32, cross),
         helper.make_tensor_value_info("n_layer_cross_v", f32, cross),
         helper.make_tensor_value_info("offset", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logits", f32, ["N", "n_tokens", N_VOCAB]),
         helper.make_tensor_value_info("out_n_layer_self_k_cache", f32, cache),
         helper.make_tensor_value_info("out_n_layer_self_v_cache", f32, cache)],
        g.inits)
    return graph, {}


def build(dest: Path, size: str = "tiny", weight: float = WEIGHT, offset: float = OFFSET,
          favour: tuple[str, str] = ("vi", "en"), quantize: bool = False, seed: int = 0) -> Path:
    """Write ``encoder.onnx`` and ``decoder.onnx`` into ``dest``. A positive score favours
    ``favour[0]``, a negative one ``favour[1]``; ``weight=0`` is the stand-in not built to tell
    them apart. ``quantize``: int8 MatMul weights, as sherpa-onnx's ``*.int8.onnx`` releases."""
    d = SIZES[size]
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for name, (graph, meta) in (("encoder", _encoder(d, rng, offset)),
                                ("decoder", _decoder(d, rng, weight, favour))):
        save_onnx(dest / f"{name}.onnx", graph, meta)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            plain = dest / f"{name}.fp32.onnx"
            (dest / f"{name}.onnx").rename(plain)
            quantize_dynamic(str(plain), str(dest / f"{name}.onnx"), op_types_to_quantize=["MatMul"],
                             weight_type=QuantType.QInt8)
            plain.unlink()
    mark_standin(dest, f"Whisper language-ID stand-in, size {size}, weight {weight}, "
                       f"favour {favour[0]} over {favour[1]} on a positive score")
    return dest
