"""A stand-in streaming transducer for sherpa-onnx: a random-weight LSTM transducer.

No sherpa-onnx ASR model can be had on the test machine (docs/models.md). This writes one in
the icefall ``lstm_transducer_stateless2`` export layout that sherpa-onnx's
``OnlineRecognizer.from_transducer`` loads: ``encoder.onnx`` (inputs ``x`` (N, T, 80), ``h``
(layers, N, d_model), ``c`` (layers, N, rnn_hidden_size); outputs ``encoder_out``, ``next_h``,
``next_c``; metadata ``model_type=lstm``, ``num_encoder_layers``, ``T``, ``decode_chunk_len``,
``rnn_hidden_size``, ``d_model``), ``decoder.onnx`` (metadata ``vocab_size``, ``context_size``),
``joiner.onnx`` and ``tokens.txt``. The encoder is real ONNX LSTM layers carrying their state
across chunks, so the cost scales like a real model: ``base`` (12 layers of 512, about 27M
parameters) is sized like a published streaming English model. Its text is deterministic
gibberish: assert on mechanics and determinism, never on words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jbcalling.speech.modelfiles import mark_standin

FEAT = 80
SUBSAMPLE = 4


@dataclass(frozen=True)
class Dims:
    layers: int
    d_model: int
    joiner: int
    vocab: int
    chunk: int = 32  # feature frames (10 ms each) decoded per step: 320 ms


SIZES = {"tiny": Dims(layers=2, d_model=64, joiner=64, vocab=200),
         "base": Dims(layers=12, d_model=512, joiner=512, vocab=500)}


def save_onnx(path: Path, graph: Any, meta: dict[str, str]) -> None:
    """Write ``graph`` as a checked ONNX model (opset 17) with ``meta`` as its metadata."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _encoder(d: Dims, rng: np.random.Generator) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper, numpy_helper

    frames = d.chunk // SUBSAMPLE
    t_in = d.chunk + 7  # icefall feeds a few frames of right context with each chunk
    h = d.d_model
    inits = [numpy_helper.from_array(np.array([0, 0, 0], np.int64), "start"),
             numpy_helper.from_array(np.array([1, d.chunk, FEAT], np.int64), "stop_dummy"),
             numpy_helper.from_array(np.array([0, frames, SUBSAMPLE * FEAT], np.int64), "fshape"),
             numpy_helper.from_array(np.array([d.chunk], np.int64), "chunk_end"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.ones(h, np.float32), "ln_scale"),
             numpy_helper.from_array(np.zeros(h, np.float32), "ln_bias"),
             numpy_helper.from_array(
                 (rng.standard_normal((SUBSAMPLE * FEAT, h)) * 0.05).astype(np.float32), "w_in"),
             numpy_helper.from_array(
                 (rng.standard_normal((h, d.joiner)) / np.sqrt(h)).astype(np.float32), "w_out")]
    nodes = [
        helper.make_node("Slice", ["x", "zero", "chunk_end", "axis1"], ["xc"]),
        helper.make_node("Reshape", ["xc", "fshape"], ["xs"]),
        helper.make_node("MatMul", ["xs", "w_in"], ["proj"]),
        # Normalized features also skip past the LSTMs, so that the output keeps following the
        # input (random LSTMs saturate, and a transducer fed a constant emits nothing).
        helper.make_node("LayerNormalization", ["proj", "ln_scale", "ln_bias"], ["normed"], axis=-1),
        helper.make_node("Transpose", ["normed"], ["seq0"], perm=[1, 0, 2]),
    ]
    hs, cs = [], []
    for i in range(d.layers):
        inits += [
            numpy_helper.from_array(
                (rng.standard_normal((1, 4 * h, h)) / np.sqrt(h)).astype(np.float32), f"W{i}"),
            numpy_helper.from_array(
                (rng.standard_normal((1, 4 * h, h)) / np.sqrt(h)).astype(np.float32), f"R{i}"),
            numpy_helper.from_array(np.array([i], np.int64), f"l{i}"),
            numpy_helper.from_array(np.array([i + 1], np.int64), f"l{i}e")]
        nodes += [
            helper.make_node("Slice", ["h", f"l{i}", f"l{i}e", "zero"], [f"h{i}"]),
            helper.make_node("Slice", ["c", f"l{i}", f"l{i}e", "zero"], [f"c{i}"]),
            helper.make_node("LSTM", [f"seq{i}", f"W{i}", f"R{i}", "", "", f"h{i}", f"c{i}"],
                             [f"y{i}", f"nh{i}", f"nc{i}"], hidden_size=h),
            helper.make_node("Squeeze", [f"y{i}", "axis1"], [f"seq{i + 1}"]),
        ]
        hs.append(f"nh{i}")
        cs.append(f"nc{i}")
    nodes += [
        helper.make_node("Transpose", [f"seq{d.layers}"], ["enc"], perm=[1, 0, 2]),
        helper.make_node("Add", ["enc", "normed"], ["mixed"]),
        helper.make_node("MatMul", ["mixed", "w_out"], ["encoder_out"]),
        helper.make_node("Concat", hs, ["next_h"], axis=0),
        helper.make_node("Concat", cs, ["next_c"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", t_in, FEAT]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [d.layers, "N", h]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [d.layers, "N", h])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", frames, d.joiner]),
         helper.make_tensor_value_info("next_h", TensorProto.FLOAT, [d.layers, "N", h]),
         helper.make_tensor_value_info("next_c", TensorProto.FLOAT, [d.layers, "N", h])],
        inits)
    meta = {"model_type": "lstm", "num_encoder_layers": str(d.layers), "T": str(t_in),
            "decode_chunk_len": str(d.chunk), "rnn_hidden_size": str(h), "d_model": str(h),
            "comment": "jbcalling random-weight stand-in"}
    return graph, meta


def _decoder(d: Dims, rng: np.random.Generator) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper, numpy_helper

    emb = (rng.standard_normal((d.vocab, d.joiner)) * 0.5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["emb", "y"], ["e"]),
         helper.make_node("ReduceMean", ["e"], ["decoder_out"], axes=[1], keepdims=0)],
        "decoder", [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", d.joiner])],
        [numpy_helper.from_array(emb, "emb")])
    return graph, {"vocab_size": str(d.vocab), "context_size": "2"}


def _joiner(d: Dims, rng: np.random.Generator) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper, numpy_helper

    w = (rng.standard_normal((d.joiner, d.vocab)) * 0.5).astype(np.float32)
    bias = np.zeros(d.vocab, np.float32)
    bias[0] = 1.0  # blank a little likelier, so that text comes in bursts like real speech
    graph = helper.make_graph(
        [helper.make_node("Add", ["encoder_out", "decoder_out"], ["s"]),
         helper.make_node("Tanh", ["s"], ["t"]),
         helper.make_node("MatMul", ["t", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["logit"])],
        "joiner",
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", d.joiner]),
         helper.make_tensor_value_info("decoder_out", TensorProto.FLOAT, ["N", d.joiner])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", d.vocab])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    return graph, {}


def build(dest: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write the stand-in into ``dest`` (encoder/decoder/joiner .onnx, tokens.txt)."""
    d = SIZES[size]
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for name, make in (("encoder", _encoder), ("decoder", _decoder), ("joiner", _joiner)):
        graph, meta = make(d, rng)
        save_onnx(dest / f"{name}.onnx", graph, meta)
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = ["<blk>", "<sos/eos>", "<unk>"]
    pieces += [f"▁{a}{b}" if i % 3 == 0 else f"{a}{b}"
               for i, (a, b) in enumerate((a, b) for a in letters for b in letters)]
    (dest / "tokens.txt").write_text("".join(f"{p} {i}\n" for i, p in enumerate(pieces[:d.vocab])))
    mark_standin(dest, f"random-weight LSTM transducer stand-in, size {size}")
    return dest


def _offline_encoder(d: Dims, rng: np.random.Generator) -> tuple[Any, dict[str, str]]:
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1 << 30], np.int64), "big"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array([SUBSAMPLE], np.int64), "step"),
             numpy_helper.from_array(np.array(SUBSAMPLE - 1, np.int64), "round_up"),
             numpy_helper.from_array(np.array(SUBSAMPLE, np.int64), "sub"),
             numpy_helper.from_array(np.ones(FEAT, np.float32), "ln_scale"),
             numpy_helper.from_array(np.zeros(FEAT, np.float32), "ln_bias"),
             numpy_helper.from_array(
                 (rng.standard_normal((FEAT, d.joiner)) / np.sqrt(FEAT)).astype(np.float32), "w")]
    nodes = [
        helper.make_node("Slice", ["x", "zero", "big", "axis1", "step"], ["xs"]),
        helper.make_node("LayerNormalization", ["xs", "ln_scale", "ln_bias"], ["xn"], axis=-1),
        helper.make_node("MatMul", ["xn", "w"], ["encoder_out"]),
        helper.make_node("Add", ["x_lens", "round_up"], ["lens_up"]),
        helper.make_node("Div", ["lens_up", "sub"], ["encoder_out_lens"]),
    ]
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", FEAT]),
         helper.make_tensor_value_info("x_lens", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["N", "T2", d.joiner]),
         helper.make_tensor_value_info("encoder_out_lens", TensorProto.INT64, ["N"])],
        inits)
    return graph, {"model_type": "zipformer2", "comment": "jbcalling random-weight stand-in"}


def build_offline(dest: Path, size: str = "tiny", seed: int = 0) -> Path:
    """An offline transducer stand-in (the layout of sherpa-onnx's offline zipformers, such as
    the Vietnamese ones): ``encoder.onnx`` with ``x``, ``x_lens`` -> ``encoder_out``,
    ``encoder_out_lens``; the same decoder, joiner and tokens as :func:`build`."""
    build(dest, size, seed)
    graph, meta = _offline_encoder(SIZES[size], np.random.default_rng(seed + 100))
    save_onnx(dest / "encoder.onnx", graph, meta)
    mark_standin(dest, f"random-weight offline transducer stand-in, size {size}")
    return dest
