"""Start a real jb-gateway process on loopback, wait until it answers, stop it: the one copy that
the benchmarks (gateway_forwarding.py, gateway_vs_janus.py) and the tests (tests/gateway_process.py,
which puts this folder on sys.path) share.

No pytest here: a gateway that never becomes ready raises :class:`NotReady` with its log's tail,
which a test turns into a failure and a benchmark into its exit message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


class NotReady(RuntimeError):
    """A process exited, or did not answer its URL with 200, in time (the message has its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str,
              timeout_s: float = 60) -> None:
    """Until ``url`` answers 200; :class:`NotReady` if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NotReady(f"{what} exited ({proc.returncode}): {_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise NotReady(f"{what} did not answer {url} within {timeout_s:g} s: {_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the gateway closes its peers), SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_gateway(redis_url: str, log: Path, port: int = 0, *, command: list[str] | None = None,
                  urls: dict[str, str] | None = None, ready_s: float = 30,
                  **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """A jb-gateway (``command``, default the venv's console script) on 127.0.0.1:``port`` (0: a
    free one), its stderr appended to ``log``; returns the process and its URL once /ready says
    200. ``urls``: {"stt": ..., "mt": ..., "tts": ...}; without them it asks a Consul that is not
    there (a dev cluster's may run on the default port) and reports recognition unavailable.
    ``settings``: more JB_GATEWAY_* variables by lower-case name (max_peers="4")."""
    port = port or free_port()
    env = {**os.environ, "JB_GATEWAY_PORT": str(port), "JB_GATEWAY_REDIS_URL": redis_url,
           "JB_GATEWAY_ICE_ADDRESSES": '["127.0.0.1"]',
           "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1",
           **{f"JB_GATEWAY_{k.upper()}_URL": v for k, v in (urls or {}).items()},
           **{f"JB_GATEWAY_{k.upper()}": v for k, v in settings.items()}}
    argv = command or [str(Path(sys.executable).parent / "jb-gateway")]
    with log.open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/ready", proc, log, "jb-gateway", ready_s)
    except NotReady:
        stop(proc)
        raise
    return proc, url


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
