"""A stand-in Piper voice: Piper's I/O signature and config, a trivial tone generator inside.

No Vietnamese Piper voice can be had on the test machine (docs/models.md). This one lets the
real Piper code path run end to end for Vietnamese: ``piper.PiperVoice`` loads it, phonemizes
the text with Piper's own espeak-ng bridge and voice ``vi``, maps the IPA phonemes through the
standard Piper phoneme id map, and runs the ONNX model with ``input``, ``input_lengths`` and
``scales`` like a real VITS voice. The audio is a tone per phoneme id (``HOP`` samples each):
its length follows the phonemes, its sound is meaningless. ``scales`` (speaking rate) is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jbcalling.speech.modelfiles import mark_standin

SAMPLE_RATE = 22050
HOP = 256


def _graph() -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ramp = (np.arange(HOP, dtype=np.float32) * 2 * np.pi * 2.0 / HOP).reshape(1, 1, HOP)
    nodes = [
        helper.make_node("Cast", ["input"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids", "axis2"], ["ids3"]),
        helper.make_node("Mul", ["ids3", "ramp"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "gain"], ["quiet"]),
        helper.make_node("Reshape", ["quiet", "shape"], ["output"]),
    ]
    inits = [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(ramp, "ramp"),
             numpy_helper.from_array(np.array(0.3, np.float32), "gain"),
             numpy_helper.from_array(np.array([1, 1, -1], np.int64), "shape")]
    graph = helper.make_graph(
        nodes, "piper_standin",
        [helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
         helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "samples"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def build(dest: Path, name: str, espeak_voice: str = "vi") -> Path:
    """Write ``<dest>/<name>.onnx`` and ``.onnx.json`` (Piper's layout); return ``dest``."""
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{name}.onnx").write_bytes(_graph())
    config = {
        "audio": {"sample_rate": SAMPLE_RATE, "quality": "medium"},
        "espeak": {"voice": espeak_voice},
        "language": {"code": "vi_VN"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "num_symbols": 1 + max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids),
        "num_speakers": 1,
        "speaker_id_map": {},
        "piper_version": "1.0.0",
        "dataset": "standin",
    }
    (dest / f"{name}.onnx.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
    mark_standin(dest, "tone-generator stand-in with a real Piper interface")
    return dest
