"""A gateway restart: the clients are told, rejoin, and get media again.

Real parts: a jb-gateway process that is stopped and started again on the same port (a new
process: no peers, a new boot id), two signaling replicas on one real Redis (A on the first, B
on the second), real aiortc participants that follow the protocol in docs/protocol.md through
``synthetic.keep_media``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from conftest import free_port
from gateway_process import start_gateway, stop_gateway
from jbcalling.client import SyntheticPeer, keep_media, negotiate_over_signaling
from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


async def _until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.2)
    return False


def test_clients_rejoin_after_the_gateway_restarts(redis_url: str, serve: Any,
                                                   tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "gateway.log"
    proc, gateway = start_gateway(redis_url, log, port)
    settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40, gateway_url=gateway,
                                 gateway_watch_s=0.5, gateway_fail_after=2)
    r = redis.Redis.from_url(redis_url)
    procs = [proc]

    async def scenario(sig1: str, sig2: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            room = (await http.post(sig1 + "/api/rooms")).json()["room_id"]
            a = (await http.post(f"{sig1}/api/rooms/{room}/join",
                                 json={"name": "An", "speak": "vi", "captions": "vi"})).json()
            b = (await http.post(f"{sig2}/api/rooms/{room}/join",
                                 json={"name": "Ben", "speak": "en", "captions": "en"})).json()
        pa = SyntheticPeer(gateway, room, a["participant_id"])
        pb = SyntheticPeer(gateway, room, b["participant_id"])
        ws1 = sig1.replace("http", "ws") + f"/ws/rooms/{room}?token=" + a["token"]
        ws2 = sig2.replace("http", "ws") + f"/ws/rooms/{room}?token=" + b["token"]
        events: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        async with connect(ws1) as wa, connect(ws2) as wb:
            await negotiate_over_signaling(pa, wa)
            await negotiate_over_signaling(pb, wb)
            both = lambda: pa.receiving("video", 20) == 1 and pb.receiving("video", 20) == 1  # noqa: E731
            assert await _until(both, 30), (pa.frames, pb.frames)
            first_boot = r.get(f"jb:room:{room}:gateway_boot")
            assert first_boot and first_boot.decode() == httpx.get(gateway + "/v1/instance").json()["boot"]

            followers = [asyncio.ensure_future(keep_media(pa, wa, events["a"], 50)),
                         asyncio.ensure_future(keep_media(pb, wb, events["b"], 50))]
            await asyncio.to_thread(stop_gateway, procs[0])
            procs.append((await asyncio.to_thread(start_gateway, redis_url, log, port))[0])
            rejoined = await _until(lambda: pa.negotiations == 2 and pb.negotiations == 2
                                    and both(), 40)
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            out = {"rejoined": rejoined, "frames": (dict(pa.frames), dict(pb.frames)),
                   "events": events, "first_boot": first_boot.decode(),
                   "boot": r.get(f"jb:room:{room}:gateway_boot"),
                   "sticky": r.get(f"jb:room:{room}:gateway"),
                   "ttl": r.ttl(f"jb:room:{room}:gateway_boot"),
                   "instance": httpx.get(gateway + "/v1/instance").json()}
            await pa.close()
            await pb.close()
        return out

    try:
        with serve(create_app(settings)) as sig1, serve(create_app(settings)) as sig2:
            out = asyncio.run(scenario(sig1.url, sig2.url))
    finally:
        stop_gateway(procs[-1])
    assert out["rejoined"], (out["frames"], out["events"], log.read_text()[-1500:])
    for who in ("a", "b"):
        told = [e for e in out["events"][who] if e["type"] == "media_reconnect"]
        # once per restart for each client, although both replicas watch the room
        assert len(told) == 1, out["events"][who]
        assert told[0]["reason"] in ("gateway_restarted", "gateway_unreachable")
        assert told[0]["message"] and told[0]["retry_ms"] > 0
        assert any(e["type"] == "media_slots" for e in out["events"][who])
    # the room's sticky gateway is the new process, renewed with the room's lifetime
    assert out["boot"].decode() == out["instance"]["boot"] != out["first_boot"]
    assert out["sticky"].decode() == f"http://127.0.0.1:{port}" and out["ttl"] > 0
    assert out["instance"]["peers"] == 2
