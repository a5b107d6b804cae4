"""Rooms, tokens, the participant WebSocket and transcripts: real Redis, real uvicorn servers,
real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from jbcalling.common.protocol import Segment, append_segment
from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings

pytestmark = pytest.mark.integration
SECRET = "test-secret-" + "x" * 32


@pytest.fixture
def settings(redis_url: str) -> SignalingSettings:
    return SignalingSettings(redis_url=redis_url, jwt_secret=SECRET,
                             consul_http_addr="http://127.0.0.1:1",
                             public_url="https://call.example", rate_join_per_min=1000,
                             rate_create_per_min=1000, turn_urls=["turn:turn.example:3478"],
                             turn_secret="turn-secret", stun_urls=["stun:turn.example:3478"])


@pytest.fixture
def srv(settings: SignalingSettings, serve: Any) -> Iterator[Any]:
    with serve(create_app(settings)) as s:
        yield s


def _room(url: str) -> dict[str, str]:
    resp = httpx.post(url + "/api/rooms")
    assert resp.status_code == 201, resp.text
    return resp.json()


def _join(url: str, room: str, name: str, host_key: str | None = None, **kw: Any) -> httpx.Response:
    body = {"name": name, "speak": "en", "captions": "vi", "hear_translation": True,
            "host_key": host_key, **kw}
    return httpx.post(f"{url}/api/rooms/{room}/join", json=body)


def _ws(url: str, room: str, token: str, origin: str | None = None) -> Any:
    headers = {"Origin": origin} if origin else None
    return connect(f"{url.replace('http', 'ws')}/ws/rooms/{room}?token={token}",
                   additional_headers=headers, open_timeout=5)


async def _next(ws: Any, kind: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


async def _closed(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as err:
        for _ in range(50):
            await asyncio.wait_for(ws.recv(), 5)
    return err.value.rcvd.code, err.value.rcvd.reason


def test_create_and_join(srv: Any) -> None:
    room = _room(srv.url)
    assert len(room["room_id"]) == 22  # 16 random bytes: 128 bits
    assert room["join_url"] == f"https://call.example/r/{room['room_id']}"
    host = _join(srv.url, room["room_id"], "Lan", room["host_key"]).json()
    guest = _join(srv.url, room["room_id"], "Bob").json()
    assert host["role"] == "host" and guest["role"] == "guest"
    claims = jwt.decode(guest["token"], SECRET, algorithms=["HS256"], issuer="jbcalling-signaling")
    assert claims["room"] == room["room_id"] and claims["exp"] > time.time()
    turn = next(s for s in guest["ice_servers"] if "username" in s)
    expiry = int(turn["username"].split(":")[0])
    assert time.time() < expiry <= time.time() + 6 * 3600 + 5 and turn["credential"]


def test_bad_join_input_is_a_clear_error(srv: Any) -> None:
    room = _room(srv.url)["room_id"]
    assert _join(srv.url, room, "", speak="en").status_code == 422
    assert _join(srv.url, room, "Al", speak="fr").status_code == 422
    assert _join(srv.url, room, "x" * 61).status_code == 422
    missing = _join(srv.url, "A" * 22, "Al")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "room_not_found"
    assert _join(srv.url, "../etc", "Al").status_code == 404


def test_seventh_participant_is_refused(srv: Any) -> None:
    room = _room(srv.url)["room_id"]
    for i in range(6):
        assert _join(srv.url, room, f"P{i}").status_code == 200
    seventh = _join(srv.url, room, "P7")
    assert seventh.status_code == 409
    assert seventh.json()["error"] == {"code": "room_full",
                                        "message": "this room is full (6 participants)"}


def test_presence_host_mute_remove_and_end(srv: Any) -> None:
    room = _room(srv.url)
    host = _join(srv.url, room["room_id"], "Lan", room["host_key"]).json()
    guest = _join(srv.url, room["room_id"], "Bob").json()
    other = _join(srv.url, room["room_id"], "Chi").json()

    async def scenario() -> None:
        async with _ws(srv.url, room["room_id"], host["token"]) as h:
            welcome = await _next(h, "welcome")
            assert welcome["you"]["role"] == "host"
            async with _ws(srv.url, room["room_id"], guest["token"]) as g, \
                    _ws(srv.url, room["room_id"], other["token"]) as o:
                names = {(await _next(h, "present"))["participant"]["name"] for _ in range(3)}
                assert names == {"Lan", "Bob", "Chi"}  # everyone's arrival, the host's own too
                # a guest may not act as host
                await g.send(json.dumps({"type": "mute", "target": host["participant_id"]}))
                assert (await _next(g, "error"))["code"] == "forbidden"
                # the host mutes and removes the guest; everyone hears of it
                await h.send(json.dumps({"type": "mute", "target": guest["participant_id"]}))
                assert (await _next(o, "muted"))["participant"] == guest["participant_id"]
                await h.send(json.dumps({"type": "remove", "target": guest["participant_id"]}))
                assert await _closed(g) == (4001, "removed by the host")
                assert (await _next(o, "removed"))["participant"] == guest["participant_id"]
            # the removed guest cannot come back with the same token
            async with _ws(srv.url, room["room_id"], guest["token"]) as g2:
                assert (await _closed(g2))[0] == 4004
            async with _ws(srv.url, room["room_id"], other["token"]) as o2:
                await _next(o2, "welcome")
                await h.send(json.dumps({"type": "end"}))
                assert (await _closed(o2))[0] == 4002
        assert _join(srv.url, room["room_id"], "Late").status_code == 404

    asyncio.run(scenario())


def test_forged_expired_and_foreign_tokens_are_refused(srv: Any) -> None:
    room = _room(srv.url)["room_id"]
    me = _join(srv.url, room, "Al").json()
    now = int(time.time())
    claims = {"iss": "jbcalling-signaling", "room": room, "sub": me["participant_id"],
              "role": "host", "iat": now}
    forged = jwt.encode({**claims, "exp": now + 60}, "another-secret-" + "y" * 30, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": now - 10}, SECRET, algorithm="HS256")
    other_room = _room(srv.url)["room_id"]

    async def scenario() -> None:
        for token, reason in ((forged, "token invalid"), (expired, "token expired"),
                              ("not-a-jwt", "token invalid")):
            async with _ws(srv.url, room, token) as ws:
                code, why = await _closed(ws)
                assert code == 4000 and why.startswith(reason)
        async with _ws(srv.url, other_room, me["token"]) as ws:
            assert await _closed(ws) == (4000, "token wrong room: join the room again")
        async with _ws(srv.url, room, me["token"], origin="https://evil.example") as ws:
            assert (await _closed(ws))[0] == 4003

    asyncio.run(scenario())


def test_bad_messages_get_errors_and_other_rooms_are_unaffected(srv: Any) -> None:
    a, b = _room(srv.url)["room_id"], _room(srv.url)["room_id"]
    pa = _join(srv.url, a, "Al").json()
    pb = _join(srv.url, b, "Bo").json()

    async def scenario() -> None:
        async with _ws(srv.url, a, pa["token"], origin="https://call.example") as wa, \
                _ws(srv.url, b, pb["token"]) as wb:
            await _next(wa, "welcome")
            await wa.send("{not json")
            assert (await _next(wa, "error"))["code"] == "bad_message"
            await wa.send(json.dumps({"type": "teleport"}))
            assert (await _next(wa, "error"))["code"] == "unknown_type"
            await wa.send(b"\x00\x01binary")
            assert (await _next(wa, "error"))["code"] == "bad_message"
            await wa.send(json.dumps({"type": "settings", "settings": {"speak": "klingon"}}))
            assert (await _next(wa, "error"))["code"] == "bad_message"
            await wa.send(json.dumps({"type": "sdp", "sdp": "hello"}))
            assert (await _next(wa, "error"))["code"] == "bad_sdp"
            await wa.send(json.dumps({"type": "media_offer"}))  # no gateway: Consul is not there
            assert (await _next(wa, "error"))["code"] == "no_gateway"
            await wa.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
            assert (await _closed(wa))[0] == 1009
            await wb.send(json.dumps({"type": "ping"}))
            assert (await _next(wb, "pong"))["type"] == "pong"

    asyncio.run(scenario())


def test_join_flood_is_rate_limited(settings: SignalingSettings, serve: Any, redis_url: str) -> None:
    import redis

    sync = redis.Redis.from_url(redis_url)
    for key in sync.scan_iter("jb:rate:*"):  # other tests' joins from 127.0.0.1 this minute
        sync.delete(key)
    limited = settings.model_copy(update={"rate_join_per_min": 5})
    with serve(create_app(limited)) as s:
        room = _room(s.url)["room_id"]
        codes = [_join(s.url, room, f"F{i}").status_code for i in range(12)]
        assert codes.count(429) >= 6 and 200 in codes
        resp = _join(s.url, room, "again")
        assert resp.status_code == 429 and int(resp.headers["Retry-After"]) <= 60
        assert httpx.get(s.url + "/ready").status_code == 200  # the service stays up


def test_an_idle_room_closes(settings: SignalingSettings, serve: Any) -> None:
    with serve(create_app(settings.model_copy(update={"room_idle_s": 1}))) as s:
        room = _room(s.url)["room_id"]
        assert _join(s.url, room, "Al").status_code == 200
        time.sleep(2.2)
        assert _join(s.url, room, "Bo").status_code == 404


def test_captions_fan_out_across_replicas_and_transcript(settings: SignalingSettings,
                                                         serve: Any, redis_url: str) -> None:
    with serve(create_app(settings)) as r1, serve(create_app(settings)) as r2:
        room = _room(r1.url)["room_id"]
        a = _join(r1.url, room, "An", speak="vi", captions="vi").json()
        b = _join(r2.url, room, "Ben").json()

        async def scenario() -> None:
            async with _ws(r1.url, room, a["token"]) as wa, _ws(r2.url, room, b["token"]) as wb:
                await _next(wa, "welcome")
                await _next(wb, "welcome")
                red = aioredis.Redis.from_url(redis_url)
                caption = {"type": "caption", "kind": "final", "segment": 1, "speaker": a["participant_id"],
                           "lang": "vi", "text": "xin chào", "translations": {"en": "hello"}}
                await red.publish(f"jb:room:{room}:events", json.dumps(caption))
                for ws in (wa, wb):
                    got = await _next(ws, "caption")
                    assert got["translations"] == {"en": "hello"}
                for i, (text, tr) in enumerate([("xin chào", "hello"), ("cảm ơn", "thank you")]):
                    await append_segment(red, room, Segment(
                        "An", a["participant_id"], 1000 * i, 1000 * i + 800, "vi", text, tr, "en"))
                await red.aclose()

        asyncio.run(scenario())
        auth = {"Authorization": f"Bearer {b['token']}"}
        txt = httpx.get(f"{r2.url}/api/rooms/{room}/transcript?format=txt", headers=auth).text
        assert "An (vi): xin chào" in txt and "(en) thank you" in txt
        vtt = httpx.get(f"{r2.url}/api/rooms/{room}/transcript?format=vtt", headers=auth).text
        assert vtt.startswith("WEBVTT") and "00:00:01.000 --> 00:00:01.800" in vtt
        assert "<v An>cảm ơn" in vtt
        doc = httpx.get(f"{r1.url}/api/rooms/{room}/transcript", params={"format": "json"},
                        headers={"Authorization": f"Bearer {a['token']}"}).json()
        assert [s["translation"] for s in doc["segments"]] == ["hello", "thank you"]
        denied = httpx.get(f"{r1.url}/api/rooms/{room}/transcript")
        assert denied.status_code == 401
        assert httpx.get(f"{r1.url}/api/rooms/{room}/transcript?format=pdf",
                         headers=auth).status_code == 422


@pytest.mark.parametrize("speak_auto", [False, True])
def test_detect_is_offered_only_where_stt_can_identify_languages(settings: SignalingSettings,
                                                                  serve: Any,
                                                                  speak_auto: bool) -> None:
    with serve(create_app(settings.model_copy(update={"speak_auto": speak_auto}))) as s:
        offered = httpx.get(s.url + "/api/config").json()["speak"]
        room = _room(s.url)
        joined = _join(s.url, room["room_id"], "An", room["host_key"], speak="auto")
        other = _join(s.url, room["room_id"], "Binh").json()

        async def change() -> dict[str, Any]:
            url = s.url.replace("http", "ws") + f"/ws/rooms/{room['room_id']}?token={other['token']}"
            async with connect(url, origin="https://call.example") as ws:
                await ws.send(json.dumps({"type": "settings", "settings": {"speak": "auto"}}))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg["type"] in ("error", "settings"):
                        return msg

        answer = asyncio.run(change())
    if speak_auto:
        assert offered == ["vi", "en", "auto"]
        assert joined.status_code == 200 and joined.json()["participant_id"]
        assert answer["type"] == "settings" and answer["participant"]["speak"] == "auto"
    else:
        assert offered == ["vi", "en"]
        assert joined.status_code == 400
        assert joined.json()["error"]["code"] == "detect_unavailable"
        assert "not enabled" in joined.json()["error"]["message"]
        assert answer["type"] == "error" and answer["code"] == "detect_unavailable"
