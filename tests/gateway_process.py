"""A real jb-gateway process for the tests (it owns its own aiortc and event loop, like in
production), started on a given or free loopback port and stopped by its process id: the
benchmarks' benchmarks/gateway_proc.py, with a gateway that never becomes ready as a test
failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# appended, not prepended: a benchmark's module never shadows a test helper of the same name
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gateway_proc


def start_gateway(redis_url: str, log: Path, port: int = 0, urls: dict[str, str] | None = None,
                  **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``urls``: {"stt": ..., "mt": ..., "tts": ...}; without them the gateway asks a Consul
    that is not there and the pipeline reports recognition as unavailable. ``env``: more
    JB_GATEWAY_* settings by lower-case name."""
    try:
        return gateway_proc.start_gateway(redis_url, log, port, urls=urls, **env)
    except gateway_proc.NotReady as exc:
        pytest.fail(f"jb-gateway did not become ready: {exc}")


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    gateway_proc.stop(proc)
