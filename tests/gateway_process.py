"""A real jb-gateway process for the tests (it owns its own aiortc and event loop, like in
production), started on a given or free loopback port and stopped by its process id."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port


def start_gateway(redis_url: str, log: Path, port: int = 0, urls: dict[str, str] | None = None,
                  **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``urls``: {"stt": ..., "mt": ..., "tts": ...}; without them the gateway asks a Consul
    that is not there and the pipeline reports recognition as unavailable."""
    port = port or free_port()
    full = {**os.environ, "JB_GATEWAY_PORT": str(port), "JB_GATEWAY_REDIS_URL": redis_url,
            "JB_GATEWAY_ICE_ADDRESSES": '["127.0.0.1"]',
            "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1",
            **{f"JB_GATEWAY_{k.upper()}_URL": v for k, v in (urls or {}).items()},
            **{f"JB_GATEWAY_{k.upper()}": v for k, v in env.items()}}
    with log.open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([str(Path(sys.executable).parent / "jb-gateway")], env=full,
                                stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    pytest.fail("jb-gateway did not become ready: " + log.read_text()[-2000:])


def stop_gateway(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
