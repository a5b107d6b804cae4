"""Chat, raised hands, reactions, lock and the waiting room, through signaling: real Redis, a
real uvicorn server, real WebSocket clients. mt is down here (its URL refuses connections):
chat goes out untranslated, marked so; the translated path runs in tests/browser with real mt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from signaling_client import HTTP, closed_within, join, next_event, room, settings_for, socket

from conftest import ServedApp
from jbcalling.common.protocol import Segment, append_segment
from jbcalling.signaling.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(redis_url: str) -> Iterator[Any]:
    settings = settings_for(redis_url, mt_url="http://127.0.0.1:1", chat_max_chars=50,
                            chat_translate_timeout_s=2.0, rate_wait_per_min=10_000)
    with ServedApp(create_app(settings)) as s:
        yield s


async def _errors(ws: Any, n: int, timeout: float = 5) -> list[dict[str, Any]]:
    return [await next_event(ws, "error", timeout) for _ in range(n)]


def test_chat_limits_order_and_transcript(srv: Any, redis_url: str) -> None:
    made = room(srv.url)
    rid = made["room_id"]
    host = join(srv.url, rid, "Lan", made["host_key"])
    guest = join(srv.url, rid, "Bob")

    async def scenario() -> None:
        import redis.asyncio as aioredis
        r = aioredis.Redis.from_url(redis_url)
        await append_segment(r, rid, Segment("Lan", host["participant_id"], 0, 900, "en",
                                             "spoken first", "nói trước", "vi"))
        await r.aclose()
        async with socket(srv.url, rid, host["token"]) as h, \
                socket(srv.url, rid, guest["token"]) as g:
            await next_event(h, "welcome")
            await next_event(g, "welcome")
            await h.send(json.dumps({"type": "chat", "text": "x" * 51}))
            too_long = await next_event(h, "error")
            assert too_long["code"] == "too_long" and "50 characters" in too_long["message"]
            # (refused messages use the socket's chat bucket too: a burst of 5 with the next one)
            for bad in ({"type": "chat", "text": "  "}, {"type": "chat", "text": ["a"]},
                        {"type": "chat", "text": "a\x00b"}):
                await h.send(json.dumps(bad))
                assert (await next_event(h, "error"))["code"] == "bad_message", bad
            await h.send(json.dumps({"type": "chat", "text": "see https://example.org/a-b"}))
            for ws in (h, g):
                msg = await next_event(ws, "chat")
                assert msg["text"] == "see https://example.org/a-b" and msg["lang"] == "en"
                assert msg["sender"] == host["participant_id"] and msg["sender_name"] == "Lan"
                assert msg["translations"] == {} and msg["translation_error"] == "unavailable"
            # too fast: the socket's chat bucket (a burst of 5) refuses the rest, and says so
            for i in range(8):
                await g.send(json.dumps({"type": "chat", "text": f"m{i}"}))
            refused = [e for e in await _errors(g, 3) if e["code"] == "rate_limited"]
            assert refused and "chat" in refused[0]["message"]
            got = [(await next_event(h, "chat", 15))["text"] for _ in range(5)]
            assert got == [f"m{i}" for i in range(5)]  # one sender's messages keep their order

    asyncio.run(scenario())
    data = HTTP.get(f"{srv.url}/api/rooms/{rid}/transcript?format=json",
                    headers={"Authorization": f"Bearer {guest['token']}"}).json()["segments"]
    assert [(s["kind"], s["text"]) for s in data][:3] == [
        ("speech", "spoken first"), ("chat", "see https://example.org/a-b"), ("chat", "m0")]
    txt = HTTP.get(f"{srv.url}/api/rooms/{rid}/transcript?format=txt",
                   headers={"Authorization": f"Bearer {guest['token']}"}).text
    assert "Lan (en, chat): see https://example.org/a-b" in txt
    assert txt.index("spoken first") < txt.index("see https://")
    vtt = HTTP.get(f"{srv.url}/api/rooms/{rid}/transcript?format=vtt",
                   headers={"Authorization": f"Bearer {guest['token']}"}).text
    assert "<v Lan>[chat] see https://example.org/a-b" in vtt


def test_hands_queue_and_reactions(srv: Any) -> None:
    made = room(srv.url)
    rid = made["room_id"]
    host = join(srv.url, rid, "Lan", made["host_key"])
    bob = join(srv.url, rid, "Bob")
    chi = join(srv.url, rid, "Chi")
    hid, bid, cid = (p["participant_id"] for p in (host, bob, chi))

    async def scenario() -> None:
        async with socket(srv.url, rid, host["token"]) as h, \
                socket(srv.url, rid, bob["token"]) as b:
            await next_event(h, "welcome")
            await next_event(b, "welcome")
            await b.send(json.dumps({"type": "hand", "raised": True}))
            assert (await next_event(h, "hands"))["queue"] == [bid]
            assert (await next_event(b, "hands"))["queue"] == [bid]
            await h.send(json.dumps({"type": "hand"}))
            assert (await next_event(b, "hands"))["queue"] == [bid, hid]
            await b.send(json.dumps({"type": "hand", "raised": True}))  # keeps its place
            async with socket(srv.url, rid, chi["token"]) as c:
                assert (await next_event(c, "welcome"))["hands"] == [bid, hid]
                await c.send(json.dumps({"type": "hand", "raised": False, "target": hid}))
                forbidden = await next_event(c, "error")
                assert forbidden["code"] == "forbidden" and "host" in forbidden["message"]
                await c.send(json.dumps({"type": "hand", "raised": True, "target": bid}))
                assert (await next_event(c, "error"))["code"] == "forbidden"
                await c.send(json.dumps({"type": "hand", "raised": "yes"}))
                assert (await next_event(c, "error"))["code"] == "bad_message"
                await h.send(json.dumps({"type": "hand", "raised": False, "target": bid}))
                assert (await next_event(b, "hands"))["queue"] == [hid]
                lowered = await next_event(c, "hands")
                assert lowered == {"type": "hands", "queue": [hid], "by": hid}
                await c.send(json.dumps({"type": "react", "emoji": "🎉"}))
                assert await next_event(h, "reaction") == {
                    "type": "reaction", "participant": cid, "emoji": "🎉"}
                await c.send(json.dumps({"type": "react", "emoji": "<script>"}))
                bad = await next_event(c, "error")
                assert bad["code"] == "bad_message" and "👍" in bad["message"]
                # the host removes Chi with her hand up: her hand leaves the queue
                await c.send(json.dumps({"type": "hand"}))
                assert (await next_event(b, "hands"))["queue"] == [hid, cid]
                await h.send(json.dumps({"type": "remove", "target": cid}))
                assert (await next_event(b, "hands"))["queue"] == [hid]

    asyncio.run(scenario())


def _poll(url: str, rid: str, token: str) -> httpx.Response:
    return HTTP.get(f"{url}/api/rooms/{rid}/waiting", headers={"Authorization": f"Bearer {token}"})


class _Recorded:
    """A client socket that remembers the type of every event it received."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.types: list[str] = []

    async def recv(self) -> str:
        text = await self.ws.recv()
        self.types.append(json.loads(text)["type"])
        return str(text)

    async def send(self, text: str) -> None:
        await self.ws.send(text)


def test_lock_waiting_room_admit_and_decline(srv: Any) -> None:
    made = room(srv.url)
    rid = made["room_id"]
    host = join(srv.url, rid, "Lan", made["host_key"])
    bob = join(srv.url, rid, "Bob")

    async def scenario() -> None:
        async with socket(srv.url, rid, host["token"]) as h, \
                socket(srv.url, rid, bob["token"]) as bob_ws:
            b = _Recorded(bob_ws)  # every event the guest gets: never the lobby's names
            assert (await next_event(h, "welcome"))["locked"] is False
            assert (await next_event(h, "waiting"))["waiting"] == []  # hosts get the lobby
            await next_event(b, "welcome")
            await b.send(json.dumps({"type": "lock"}))
            refused = await next_event(b, "error")
            assert refused == {"type": "error", "code": "forbidden",
                               "message": "only the host may lock"}
            await h.send(json.dumps({"type": "lock", "locked": True}))
            assert await next_event(b, "locked") == {"type": "locked", "locked": True,
                                                     "by": host["participant_id"]}

            # a later joiner waits: no seat, a token good only for waiting
            joined = HTTP.post(f"{srv.url}/api/rooms/{rid}/join",
                               json={"name": "Dung", "speak": "vi", "captions": "vi"})
            assert joined.status_code == 202, joined.text
            wait = joined.json()
            assert wait["waiting"] is True and "token" not in wait
            assert _poll(srv.url, rid, wait["wait_token"]).json() == {"state": "waiting"}
            listed = (await next_event(h, "waiting"))["waiting"]
            assert [(w["name"], w["speak"]) for w in listed] == [("Dung", "vi")]
            assert HTTP.get(f"{srv.url}/api/rooms/{rid}/transcript",
                            headers={"Authorization": f"Bearer {wait['wait_token']}"}
                            ).status_code == 401
            async with socket(srv.url, rid, wait["wait_token"]) as w:
                code, _ = await closed_within(w, 5)
                assert code == 4000
            assert _poll(srv.url, rid, host["token"]).status_code == 401  # not a waiting token

            await b.send(json.dumps({"type": "admit", "request": wait["request_id"]}))
            assert (await next_event(b, "error"))["code"] == "forbidden"
            await h.send(json.dumps({"type": "admit", "request": wait["request_id"],
                                     "admit": True}))
            seated = await next_event(b, "joined")
            assert seated["participant"]["name"] == "Dung"
            assert (await next_event(h, "waiting"))["waiting"] == []
            admitted = _poll(srv.url, rid, wait["wait_token"]).json()
            assert admitted["state"] == "admitted" and admitted["role"] == "guest"
            assert admitted["participant_id"] == seated["participant"]["id"]
            async with socket(srv.url, rid, admitted["token"]) as d:
                welcome = await next_event(d, "welcome")
                assert welcome["locked"] is True and welcome["you"]["name"] == "Dung"

            # a decline is final for that request
            again = HTTP.post(f"{srv.url}/api/rooms/{rid}/join",
                              json={"name": "Em", "speak": "en", "captions": "en"}).json()
            await next_event(h, "waiting")
            await h.send(json.dumps({"type": "admit", "request": again["request_id"],
                                     "admit": False}))
            assert (await next_event(h, "waiting"))["waiting"] == []
            assert _poll(srv.url, rid, again["wait_token"]).json() == {"state": "declined"}
            await b.send(json.dumps({"type": "lock", "locked": True}))
            await next_event(b, "error")  # forbidden: everything published before it came in
            assert "joined" in b.types and "waiting" not in b.types, b.types
            await h.send(json.dumps({"type": "admit", "request": again["request_id"]}))
            assert (await next_event(h, "error"))["code"] == "no_such_request"
            await h.send(json.dumps({"type": "admit", "request": 5, "admit": "yes"}))
            assert (await next_event(h, "error"))["code"] == "bad_message"

            # a host (with the host key) walks in; unlocking lets guests in again
            key_holder = HTTP.post(f"{srv.url}/api/rooms/{rid}/join", json={
                "name": "Lan 2", "speak": "en", "captions": "en", "host_key": made["host_key"]})
            assert key_holder.status_code == 200 and key_holder.json()["role"] == "host"
            await h.send(json.dumps({"type": "lock", "locked": False}))
            assert (await next_event(b, "locked"))["locked"] is False
            assert HTTP.post(f"{srv.url}/api/rooms/{rid}/join", json={
                "name": "Giang", "speak": "en", "captions": "en"}).status_code == 200

    asyncio.run(scenario())
