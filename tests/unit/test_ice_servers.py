"""Every aiortc peer connection the project creates names its ICE servers.

Given none (``RTCConfiguration()`` or no configuration at all), aiortc falls back to a public
STUN server: a self-hosted gateway, the probe and the tests must never contact an address the
operator did not configure. This reads the source, so a new peer connection anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("services", "cli", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py")]


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((path, node))
    return found


def test_every_peer_connection_gets_an_explicit_configuration() -> None:
    calls = _calls("RTCPeerConnection")
    assert calls, "no RTCPeerConnection found: the scan is broken"
    for path, call in calls:
        assert call.args or call.keywords, f"{path}:{call.lineno}: RTCPeerConnection() without " \
                                           "a configuration uses a public STUN server"


def test_every_configuration_names_its_ice_servers() -> None:
    calls = _calls("RTCConfiguration")
    assert calls, "no RTCConfiguration found: the scan is broken"
    for path, call in calls:
        keywords = {k.arg for k in call.keywords}
        assert "iceServers" in keywords or call.args, \
            f"{path}:{call.lineno}: RTCConfiguration without iceServers uses a public STUN server"
        for k in call.keywords:
            if k.arg == "iceServers":
                assert not (isinstance(k.value, ast.Constant) and k.value.value is None), \
                    f"{path}:{call.lineno}: iceServers=None is aiortc's default (public STUN)"
