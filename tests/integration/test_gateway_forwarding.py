"""The media gateway forwards, for real: a jb-gateway process, real aiortc peers on loopback.

Three participants each receive the other two's audio and video; the gateway never starts a
video encoder; a late joiner gets a picture within 1 s of its connection being up (keyframe
requested from the sources); a subscriber's NACK is answered with the lost packet and its PLI
reaches the source's encoder; participants that leave stop their forwarding; bad input is
refused with a reason and the gateway stays up.
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
def gateway_log(tmp_path: Path) -> Path:
    return tmp_path / "gateway.log"


@pytest.fixture
def gateway(redis_url: str, gateway_log: Path) -> Iterator[str]:
    # pacing at its strictest (one packet at a time, then the timer): every keyframe of more
    # than one packet waits in the pacer, and the tests below show nothing is lost or late
    proc, url = start_gateway(redis_url, gateway_log, max_peers="4", max_rooms="2",
                              pacing_burst="1")
    yield url
    stop_gateway(proc)


async def _until(cond, timeout: float, step: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(step)
    return bool(cond())


async def _metrics(http: httpx.AsyncClient, gateway: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in
            (await http.get(gateway + "/metrics")).text.splitlines() if line.startswith("jb_")}


def _watch_rtp(peer: SyntheticPeer, mid: str) -> list[Any]:
    """Every RTP packet ``peer`` receives on ``mid`` (its receiver's handler, wrapped)."""
    receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.mid == mid)
    seen: list[Any] = []
    real = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        seen.append(packet)
        await real(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle
    return seen


def _watch_transport(transport: Any) -> list[Any]:
    """Every RTP packet that arrives on an aiortc DTLS transport, decrypted, before routing."""
    from aiortc.rtp import RtpPacket

    seen: list[Any] = []
    real = transport._handle_rtp_data

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        seen.append(RtpPacket.parse(data))
        await real(data, arrival_time_ms)

    transport._handle_rtp_data = handle
    return seen


def _vp8_keyframe(payload: bytes) -> bool:
    """The first packet of a VP8 keyframe (RFC 7741: payload descriptor, then the header's P
    bit clear)."""
    if len(payload) < 2 or payload[0] & 0x17 != 0x10:  # S set, partition 0
        return False
    pos = 1
    if payload[0] & 0x80:  # X: extensions
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            pos += 2 if payload[pos] & 0x80 else 1
        pos += bool(ext & 0x40) + bool(ext & 0x30)  # L: TL0PICIDX; T/K: one byte
    return len(payload) > pos and payload[pos] & 0x01 == 0


def _count_keyframe_requests(peer: SyntheticPeer) -> list[float]:
    """When ``peer``'s camera sender was asked for a keyframe (by an RTCP PLI/FIR)."""
    sender = next(t.sender for t in peer.pc.getTransceivers()
                  if t.sender.track is not None and t.sender.track.kind == "video")
    asked: list[float] = []
    real = sender._send_keyframe

    def send_keyframe() -> None:
        asked.append(time.monotonic())
        real()

    sender._send_keyframe = send_keyframe
    return asked


def test_three_participants_each_receive_the_other_two(gateway: str, gateway_log: Path) -> None:
    async def scenario() -> None:
        peers = [SyntheticPeer(gateway, "roomAAAAAA", f"peer{i}AAA") for i in range(3)]
        async with httpx.AsyncClient(timeout=20) as http:
            for p in peers:
                await p.connect(http)
            ok = await _until(lambda: all(p.receiving("video", 30) == 2 and
                                          p.receiving("audio", 50) == 2 for p in peers), 40)
            assert ok, [dict(p.frames) for p in peers]
            assert all(size == (640, 480) for p in peers for size in p.sizes.values())
            # a late joiner sees the others within 1 s of its connection being up: the gateway
            # asked the sources for keyframes
            # (it sends no video: one VP8 encoder and three decoders fewer in this process,
            # which on two busy cores is what makes keyframes late)
            late = SyntheticPeer(gateway, "roomAAAAAA", "lateAAAA", camera=False)
            late_up: list[float] = []
            late.pc.on("connectionstatechange", lambda: late_up.append(time.monotonic())
                       if late.pc.connectionState == "connected" else None)
            await late.connect(http)
            keyframes: dict[str, float] = {}  # mid -> when its first keyframe packet came
            seen_late = {mid: _watch_rtp(late, mid) for mid, k in late.kinds().items()
                         if k == "video" and mid in late.slot_mids()}

            late_first: dict[str, float] = {}

            def keyframes_in() -> bool:
                for mid, packets in seen_late.items():
                    if packets and mid not in late_first:
                        late_first[mid] = time.monotonic()
                    if mid not in keyframes and any(_vp8_keyframe(p.payload) for p in packets):
                        keyframes[mid] = time.monotonic()
                return len(keyframes) == 3
            assert await _until(keyframes_in, 15, step=0.02) and late_up, (keyframes, late_up)
            pictures_after = max(keyframes.values()) - late_up[0]
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
            # keyframes come as bursts of packets: they waited in their subscriber's pacer
            # (gateway/pacing.py, one packet back to back here), and none was lost there
            assert m["jb_gateway_paced_packets_total"] >= 1
            assert not [k for k, v in m.items() if "pacer_full" in k and v], m
            assert pictures_after < 1.0, (sorted((k, t - late_up[0]) for k, t in keyframes.items()),
                                          {k: len(v) for k, v in seen_late.items()},
                                          [(k, t - late_up[0]) for k, t in late_first.items()])

            # A subscriber's NACK for a packet it got: the gateway sends it again (over RTX).
            p0 = peers[0]
            mid = next(x for x, k in p0.kinds().items() if k == "video" and x in p0.slot_mids()
                       and p0.frames[x])
            seen = _watch_rtp(p0, mid)
            assert await _until(lambda: len(seen) > 5, 5)
            media_ssrc, lost = seen[-1].ssrc, seen[-1].sequence_number
            receiver = next(t.receiver for t in p0.pc.getTransceivers() if t.mid == mid)
            resent0 = m['jb_gateway_retransmitted_packets_total{kind="video"}']
            # (aiortc routes RTX by SSRC or a payload type only one receiver has: with three
            # video slots it drops it before any receiver, so watch the transport itself)
            arrived = _watch_transport(receiver.transport)
            await receiver._send_rtcp_nack(media_ssrc, [lost])  # private in aiortc 1.16
            assert await _until(lambda: any(p.ssrc != media_ssrc and p.payload[:2] ==
                                            lost.to_bytes(2, "big") for p in arrived), 3)
            m = await _metrics(http, gateway)
            assert m['jb_gateway_retransmitted_packets_total{kind="video"}'] >= resent0 + 1

            # A subscriber's PLI reaches the source's encoder (relayed by the gateway): one of
            # the other two cameras, after a quiet second, and only that one.
            asked = {p.pid: _count_keyframe_requests(p) for p in peers[1:]}
            await asyncio.sleep(1.0)
            assert not any(asked.values()), asked  # nobody asks for keyframes by themselves
            before = {k: v for k, v in (await _metrics(http, gateway)).items() if "keyframe" in k}
            await receiver._send_rtcp_pli(media_ssrc)  # private in aiortc 1.16
            assert await _until(lambda: any(asked.values()), 2), \
                f"{asked} {sorted(before.items())} -> " + \
                str(sorted((k, v) for k, v in (await _metrics(http, gateway)).items()
                           if "keyframe" in k))
            await asyncio.sleep(0.5)
            assert sorted(len(a) for a in asked.values()) == [0, 1], asked
            m = await _metrics(http, gateway)
            assert m['jb_gateway_keyframe_requests_asked_total{reason="relayed"}'] >= 1

            # Every packet received goes once to each of the other three (no copies, no loss)
            sent, got = 'jb_gateway_forwarded_packets_total{kind="video"}', \
                'jb_gateway_received_packets_total{kind="video"}'
            m0 = await _metrics(http, gateway)
            await asyncio.sleep(1.0)
            m1 = await _metrics(http, gateway)
            assert m1[got] - m0[got] > 30 and m1[sent] - m0[sent] == 3 * (m1[got] - m0[got])
            # a fifth peer is refused with a reason (max 4 per room here)
            full = await http.post(f"{gateway}/v1/rooms/roomAAAAAA/peers/fifthAAA/offer")
            assert full.status_code == 503 and full.json()["error"]["code"] == "room_full"
            # Two leave: their forwarding stops (each packet now goes to the one other peer)
            for p in (late, peers[2]):
                await p.close()
            for _ in range(50):  # the gateway sees their connections close
                if (await http.get(gateway + "/ready")).json()["load"]["peers"] == 2:
                    break
                await asyncio.sleep(0.2)
            assert (await http.get(gateway + "/ready")).json()["load"]["peers"] == 2
            m0 = await _metrics(http, gateway)
            await asyncio.sleep(1.0)
            m1 = await _metrics(http, gateway)
            assert m1[got] - m0[got] > 30 and m1[sent] - m0[sent] == m1[got] - m0[got]
            for p in peers[:2]:
                await p.close()
        log = gateway_log.read_text()
        assert "Traceback" not in log and '"level": "error"' not in log.lower(), log[-3000:]

    asyncio.run(scenario())


def test_a_reconnect_replaces_the_connection_and_keeps_the_participant(gateway: str) -> None:
    """A page that reloads offers again with the same participant id: the old connection
    closes, and its closing must not take the new one out of the room."""
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=20) as http:
            a = SyntheticPeer(gateway, "roomCCCCCC", "annaAAAA")
            b_old = SyntheticPeer(gateway, "roomCCCCCC", "binhAAAA")
            for p in (a, b_old):
                await p.connect(http)
            assert await _until(lambda: b_old.receiving("video", 10) == 1, 30), b_old.frames
            b_new = SyntheticPeer(gateway, "roomCCCCCC", "binhAAAA")
            await b_new.connect(http)
            assert await _until(lambda: b_new.receiving("video", 10) == 1, 30), b_new.frames
            await asyncio.sleep(2)  # the replaced connection has closed by now
            load = (await http.get(gateway + "/ready")).json()["load"]
            assert load["peers"] == 2, load
            before = dict(b_new.frames)
            assert await _until(lambda: sum(b_new.frames.values()) > sum(before.values()) + 10,
                                10), (before, b_new.frames)
            for p in (a, b_old, b_new):
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
