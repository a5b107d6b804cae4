"""The media gateway forwards, for real: a jb-gateway process, real aiortc peers on loopback.

Three participants each receive the other two's audio and video; the gateway never starts a
video encoder; a late joiner gets a picture at once (keyframe request relayed to the source);
bad input is refused with a reason and the gateway stays up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_process import start_gateway, stop_gateway
from jbcalling.client import SyntheticPeer, negotiate_over_signaling

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


@pytest.fixture
def gateway(redis_url: str, tmp_path: Path) -> Iterator[str]:
    proc, url = start_gateway(redis_url, tmp_path / "gateway.log", max_peers="4", max_rooms="2")
    yield url
    stop_gateway(proc)


async def _until(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.2)
    return False


def test_three_participants_each_receive_the_other_two(gateway: str) -> None:
    async def scenario() -> None:
        peers = [SyntheticPeer(gateway, "roomAAAAAA", f"peer{i}AAA") for i in range(3)]
        async with httpx.AsyncClient(timeout=20) as http:
            for p in peers:
                await p.connect(http)
            ok = await _until(lambda: all(p.receiving("video", 30) == 2 and
                                          p.receiving("audio", 50) == 2 for p in peers), 40)
            assert ok, [dict(p.frames) for p in peers]
            assert all(size == (640, 480) for p in peers for size in p.sizes.values())
            # a late joiner sees both others at once: the gateway asked the sources for keyframes
            late = SyntheticPeer(gateway, "roomAAAAAA", "lateAAAA")
            await late.connect(http)
            assert await _until(lambda: late.receiving("video", 10) == 3, 15), dict(late.frames)
            # The counter counts each source's frames once (then fanned out): the frames one
            # peer decoded, each from another source, all passed it.
            decoded = max(sum(p.frames[mid] for mid, kind in p.kinds().items() if kind == "video")
                          for p in [*peers, late])
            ready = (await http.get(gateway + "/ready")).json()["load"]
            assert ready["peers"] == 4 and ready["video_encoders_started"] == 0
            assert ready["forwarded_video_frames"] >= decoded >= 2 * 30
            # /metrics counts the same forwarding where aiortc packs each frame (gateway/counters.py)
            m = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in
                 (await http.get(gateway + "/metrics")).text.splitlines() if line.startswith("jb_")}
            assert m["jb_gateway_peers"] == 4 and m["jb_gateway_rooms"] == 1
            video = m['jb_gateway_forwarded_packets_total{kind="video"}']
            assert video >= m["jb_gateway_forwarded_video_frames_total"] >= decoded
            assert m['jb_gateway_forwarded_bytes_total{kind="video"}'] > video
            assert m['jb_gateway_forwarded_packets_total{kind="audio"}'] >= 2 * 50
            assert m['jb_gateway_encoders_started_total{kind="video"}'] == 0
            assert m["jb_gateway_keyframe_requests_total"] >= 2  # the late joiner's two sources
            # a fifth peer is refused with a reason (max 4 per room here)
            full = await http.post(f"{gateway}/v1/rooms/roomAAAAAA/peers/fifthAAA/offer")
            assert full.status_code == 503 and full.json()["error"]["code"] == "room_full"
            for p in [*peers, late]:
                await p.close()

    asyncio.run(scenario())


def test_bad_input_is_refused_and_the_gateway_stays_up(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=10) as http:
        assert http.post("/v1/rooms/roomBBBBBB/peers/xAAAAAAA/answer",
                         json={"sdp": "v=0 not really"}).status_code == 404  # no offer yet
        assert http.post("/v1/rooms/roomBBBBBB/peers/xAAAAAAA/offer").status_code == 200
        bad = http.post("/v1/rooms/roomBBBBBB/peers/xAAAAAAA/answer",
                        json={"sdp": "v=0\r\nthis is not an answer\r\n"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_sdp"
        assert http.post("/v1/rooms/bad room/peers/x/offer").status_code in (400, 404)
        assert http.post("/v1/rooms/roomBBBBBB/peers/yAAAAAAA/answer",
                         content=b"\xff" * 100).status_code == 422
        assert http.get("/ready").json()["ready"] is True


def test_a_call_negotiated_through_signaling(gateway: str, redis_url: str, serve: Any) -> None:
    """Browser-like flow: join over REST, ask signaling for media on the WebSocket; signaling
    relays to the gateway, which tells each participant whose media each slot carries."""
    from websockets.asyncio.client import connect

    from jbcalling.signaling.app import create_app
    from jbcalling.signaling.settings import SignalingSettings

    settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40, gateway_url=gateway)

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            room = (await http.post(url + "/api/rooms")).json()["room_id"]
            a = (await http.post(f"{url}/api/rooms/{room}/join",
                                 json={"name": "An", "speak": "vi", "captions": "vi"})).json()
            b = (await http.post(f"{url}/api/rooms/{room}/join",
                                 json={"name": "Ben", "speak": "en", "captions": "en"})).json()
        ws_url = url.replace("http", "ws") + f"/ws/rooms/{room}?token="
        async with connect(ws_url + a["token"]) as wa, connect(ws_url + b["token"]) as wb:
            pa, pb = SyntheticPeer(gateway, room, a["participant_id"]), \
                SyntheticPeer(gateway, room, b["participant_id"])
            await negotiate_over_signaling(pa, wa)
            seen = await negotiate_over_signaling(pb, wb)
            assert await _until(lambda: pa.receiving("video", 20) == 1 and
                                pb.receiving("video", 20) == 1, 30), (pa.frames, pb.frames)
            slots = [m for m in seen if m["type"] == "media_slots"]
            assert slots and slots[-1]["slots"][0]["participant"] == a["participant_id"]
            await pa.close()
            await pb.close()

    with serve(create_app(settings)) as srv:
        asyncio.run(scenario(srv.url))
