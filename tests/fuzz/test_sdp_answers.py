"""Mutated SDP answers against a real jb-gateway process: truncation, dropped and repeated
lines, wrong m-lines, huge, bad fingerprints, duplicate attributes, odd characters. The base is
a real answer from an aiortc peer. Every answer gets 204 or a 4xx (never a 5xx, never a dropped
connection), and afterwards the gateway still connects a real peer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from hypothesis import given
from hypothesis import strategies as st

from fuzz.stack import TEST_TIMEOUT_S, Stack, seeded
from jbcalling.client import SyntheticPeer

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(TEST_TIMEOUT_S)]
EXAMPLES = 100
ROOM, PID = "fuzzroom-sdp", "fuzzpeer-sdp"


async def real_answer(gateway: str) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        offer = (await http.post(f"{gateway}/v1/rooms/{ROOM}/peers/{PID}/offer")).json()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never aiortc's default STUN
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def _pick(data: st.DataObject, lines: list[str], prefix: str) -> int | None:
    found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    return data.draw(st.sampled_from(found)) if found else None


def mutate(data: st.DataObject, sdp: str) -> str:
    """One to four mutations of ``sdp``, each drawn from ``data``."""
    lines = sdp.split("\r\n")
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from([
            "truncate", "drop", "repeat", "m_kind", "m_proto", "m_port", "drop_m", "extra_m",
            "fingerprint", "no_fingerprint", "dup_attribute", "huge", "garble", "newlines",
            "numbers"]))
        n = len(lines)
        if op == "truncate":
            text = "\r\n".join(lines)
            lines = text[:data.draw(st.integers(0, len(text)))].split("\r\n")
        elif op == "drop" and n:
            del lines[data.draw(st.integers(0, n - 1))]
        elif op == "repeat" and n:
            i = data.draw(st.integers(0, n - 1))
            lines.insert(data.draw(st.integers(0, n)), lines[i])
        elif op in ("m_kind", "m_proto", "m_port") and (i := _pick(data, lines, "m=")) is not None:
            parts = lines[i][2:].split(" ")
            slot = {"m_kind": 0, "m_port": 1, "m_proto": 2}[op]
            if slot < len(parts):
                parts[slot] = data.draw(st.sampled_from(
                    {"m_kind": ["video", "audio", "application", "text", "", "m"],
                     "m_port": ["0", "-1", "99999999999", "x"],
                     "m_proto": ["RTP/AVP", "UDP/DTLS/SCTP", "", "TCP/TLS/RTP/SAVPF"]}[op]))
            lines[i] = "m=" + " ".join(parts)
        elif op == "drop_m" and (i := _pick(data, lines, "m=")) is not None:
            end = next((j for j in range(i + 1, n) if lines[j].startswith("m=")), n)
            del lines[i:end]
        elif op == "extra_m":
            lines += data.draw(st.sampled_from([
                ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:99", "a=recvonly"],
                ["m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:0"],
                ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=sctp-port:5000"]]))
        elif op == "fingerprint" and (i := _pick(data, lines, "a=fingerprint:")) is not None:
            lines[i] = "a=fingerprint:" + data.draw(st.sampled_from([
                "sha-256 ZZ:ZZ", "md5 00:11", "sha-256", "", "sha-256 " + "AB:" * 5000,
                "sha-999 00:11:22"]) | st.text(max_size=60))
        elif op == "no_fingerprint":
            lines = [line for line in lines if not line.startswith("a=fingerprint:")]
        elif op == "dup_attribute":
            attribute = data.draw(st.sampled_from([
                "a=fingerprint:sha-256 " + ":".join(["00"] * 32), "a=setup:active",
                "a=setup:passive", "a=mid:0", "a=ice-ufrag:x", "a=ice-pwd:y" * 4,
                "a=group:BUNDLE 0 1 2 3", "a=rtpmap:111 opus/48000/2", "a=ssrc:1 cname:x",
                "a=candidate:1 1 UDP 1 127.0.0.1 9 typ host"]))
            lines.insert(data.draw(st.integers(0, len(lines))), attribute)
        elif op == "huge":
            line = data.draw(st.sampled_from(["a=x-pad:" + "y" * 1000, "a=ssrc:1 cname:z",
                                              "a=candidate:1 1 UDP 1 127.0.0.1 9 typ host"]))
            lines += [line] * data.draw(st.sampled_from([100, 190, 5000]))
        elif op == "garble" and n:
            i = data.draw(st.integers(0, n - 1))
            lines[i] = data.draw(st.text(max_size=200))
        elif op == "newlines":
            return data.draw(st.sampled_from(["\n", "\r", "\x00", "\r\n\r\n"])).join(lines)
        elif op == "numbers" and n:
            i = data.draw(st.integers(0, n - 1))
            lines[i] = "".join(data.draw(st.sampled_from(["-1", "4294967296", "1e99", "NaN"]))
                               if c.isdigit() else c for c in lines[i])
    return "\r\n".join(lines)


def test_mutated_answers_get_a_4xx_never_a_5xx(stack: Stack, loopback_ice: None) -> None:
    base = asyncio.run(real_answer(stack.gateway))
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=stack.gateway, timeout=30) as http:

        @seeded(EXAMPLES)
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            sdp = mutate(data, base)
            assert http.post(f"/v1/rooms/{ROOM}/peers/{PID}/offer").status_code == 200
            resp = http.post(f"/v1/rooms/{ROOM}/peers/{PID}/answer", json={"sdp": sdp})
            assert resp.status_code == 204 or 400 <= resp.status_code < 500, \
                (resp.status_code, resp.text[:300], sdp[:2000])
            if resp.status_code >= 400:
                assert resp.json()["error"]["code"], resp.text
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        run()
        http.delete(f"/v1/rooms/{ROOM}/peers/{PID}")
    assert sum(statuses.values()) >= EXAMPLES // 2
    assert 400 in statuses, statuses  # the mutations reached the SDP parser
    assert_no_crash_logged(stack)


def assert_no_crash_logged(stack: Stack) -> None:
    log = stack.gateway_log.read_text()
    for crash in ("Exception in ASGI application", "Task exception was never retrieved"):
        assert crash not in log, log[log.index(crash):][:3000]


def test_each_line_dropped_in_turn(stack: Stack, loopback_ice: None) -> None:
    """Systematic, besides the random mutations: the real answer without its line i, for every
    line of the session and the first m-section (the others repeat their kinds); dropping an
    rtpmap line once made aiortc raise OperationError: a 500."""
    lines = asyncio.run(real_answer(stack.gateway)).split("\r\n")
    second_m = [i for i, line in enumerate(lines) if line.startswith("m=")][1]
    statuses = []
    with httpx.Client(base_url=stack.gateway, timeout=30) as http:
        for i in range(second_m):
            assert http.post(f"/v1/rooms/{ROOM}/peers/{PID}/offer").status_code == 200
            sdp = "\r\n".join(lines[:i] + lines[i + 1:])
            resp = http.post(f"/v1/rooms/{ROOM}/peers/{PID}/answer", json={"sdp": sdp})
            assert resp.status_code == 204 or 400 <= resp.status_code < 500, \
                (i, lines[i], resp.status_code, resp.text[:300])
            statuses.append(resp.status_code)
        http.delete(f"/v1/rooms/{ROOM}/peers/{PID}")
    assert 400 in statuses and 204 in statuses, statuses


def test_the_gateway_still_connects_a_real_peer(stack: Stack, loopback_ice: None) -> None:
    async def call() -> Any:
        peer = SyntheticPeer(stack.gateway, "fuzzroom-after", "fuzzpeer-after")
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                await peer.connect(http)
            deadline = time.monotonic() + 20
            while peer.pc.connectionState != "connected" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return peer.pc.connectionState
        finally:
            await peer.close()

    assert asyncio.run(call()) == "connected"
    assert_no_crash_logged(stack)  # also what the answers above left to background tasks
