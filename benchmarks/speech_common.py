"""Helpers the speech benchmarks share: a models folder, a service in a subprocess, stats."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# Stand-ins are built outside the work tree (never committed).
CACHE = Path(os.environ.get("JB_CACHE", Path.home() / ".cache" / "jbcalling")) / "bench-models"


def models_dir() -> Path:
    """The dev models plus OPUS-MT-sized and realistic-size stand-ins, built once."""
    from jbcalling.speech import layout, standin_marian, standin_transducer
    from jbcalling.speech.modelfiles import is_standin

    CACHE.mkdir(parents=True, exist_ok=True)
    layout.install_dev_models(CACHE)
    for pair, seed in (("en-vi", 1), ("vi-en", 2)):
        folder = CACHE / f"opus-mt-{pair}-standin-base"
        if not is_standin(folder):
            standin_marian.build(folder, "base", seed=seed)
    folder = CACHE / "sherpa-lstm-transducer-standin-base"
    if not is_standin(folder):
        standin_transducer.build(folder, "base")
    return CACHE


def stats(samples: list[float], unit: str = "ms", scale: float = 1000) -> dict[str, Any]:
    s = sorted(samples)
    return {"n": len(s), f"p50_{unit}": round(statistics.median(s) * scale, 1),
            f"p95_{unit}": round(s[min(len(s) - 1, int(0.95 * len(s)))] * scale, 1),
            f"min_{unit}": round(s[0] * scale, 1), f"max_{unit}": round(s[-1] * scale, 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(name: str, env: dict[str, str], timeout: float = 120) -> Iterator[tuple[str, int]]:
    """Run ``jb-<name>`` on a free loopback port until it is ready; yield (url, pid)."""
    port = free_port()
    prefix = f"JB_{name.upper()}_"
    full = {**os.environ, **{prefix + k: v for k, v in env.items()},
            prefix + "PORT": str(port), prefix + "LOG_LEVEL": "warning"}
    proc = subprocess.Popen([str(BIN / f"jb-{name}")], env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"jb-{name} did not become ready")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def save(name: str, doc: dict[str, Any]) -> None:
    doc = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_avg_at_end": os.getloadavg()}, **doc}
    out = HERE / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    text = json.dumps(doc, indent=2)
    out.write_text(text + "\n")
    print(text)
    print(f"saved {out}", file=sys.stderr)
