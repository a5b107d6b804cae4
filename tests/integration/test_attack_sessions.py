"""Sessions, membership and tokens, attacked as a hostile participant would (docs/security.md,
"Sessions, membership and tokens"): a second socket, a removed participant's old socket and
token, a token that expires while its socket is open, the transcript token in a URL, the page's
headers.

Real parts: signaling in uvicorn on a real Redis, a real jb-gateway process behind a proxy that
counts the offers signaling asks it for, real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis
from signaling_client import (
    SECRET,
    CountingProxy,
    closed_within,
    join,
    next_event,
    room,
    settings_for,
    socket,
)
from websockets.exceptions import ConnectionClosed

from gateway_process import start_gateway, stop_gateway
from jbcalling.common.protocol import Segment, append_segment, room_key
from jbcalling.signaling import tokens
from jbcalling.signaling.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_gateway(redis_url, tmp_path_factory.mktemp("gw") / "gateway.log")
    yield url
    stop_gateway(proc)


@pytest.fixture
def proxy(gateway: str, serve: Any) -> Iterator[CountingProxy]:
    front = CountingProxy(gateway)
    with serve(front.app) as srv:
        front.url = srv.url
        yield front


@pytest.fixture
def srv(redis_url: str, proxy: CountingProxy, serve: Any) -> Iterator[Any]:
    settings = settings_for(redis_url, gateway_url=proxy.url)
    with serve(create_app(settings)) as s:
        yield s


def _ban_silently(redis_url: str, room_id: str, pid: str) -> None:
    """What the host's `remove` stores, without the `removed` event: an event a replica missed
    (Redis pub/sub delivers at most once: a resubscription after a blip loses what passed)."""
    sync = redis.Redis.from_url(redis_url)
    sync.sadd(room_key(room_id, "banned"), pid)
    sync.hdel(room_key(room_id, "people"), pid)
    sync.close()


def test_a_second_socket_closes_the_first_on_any_replica(srv: Any, redis_url: str,
                                                         serve: Any) -> None:
    made = room(srv.url)
    me = join(srv.url, made["room_id"], "Mallory")
    other = settings_for(redis_url)

    async def scenario(url2: str) -> None:
        async with socket(srv.url, made["room_id"], me["token"]) as first:
            await next_event(first, "welcome")
            async with socket(srv.url, made["room_id"], me["token"]) as second:
                await next_event(second, "welcome")
                code, reason = await closed_within(first, 5)
                assert (code, reason) == (4005, "replaced by a newer connection of this "
                                                "participant")
                # the same participant again, on another replica: the older socket goes there too
                async with socket(url2, made["room_id"], me["token"]) as third:
                    await next_event(third, "welcome")
                    assert (await closed_within(second, 5))[0] == 4005
                    await third.send(json.dumps({"type": "ping"}))
                    await next_event(third, "pong")

    with serve(create_app(other)) as replica2:
        asyncio.run(scenario(replica2.url))


def test_a_removed_participants_old_socket_gets_no_media(srv: Any, proxy: CountingProxy) -> None:
    made = room(srv.url)
    host = join(srv.url, made["room_id"], "Lan", made["host_key"])
    guest = join(srv.url, made["room_id"], "Mallory")
    pid = guest["participant_id"]

    async def scenario() -> None:
        async with socket(srv.url, made["room_id"], host["token"]) as wh, \
                socket(srv.url, made["room_id"], guest["token"]) as old:
            await next_event(wh, "welcome")
            await next_event(old, "welcome")
            async with socket(srv.url, made["room_id"], guest["token"]) as new:
                await next_event(new, "welcome")
                await wh.send(json.dumps({"type": "remove", "target": pid}))
                assert (await closed_within(new, 5))[0] == 4001
                seen: list[dict[str, Any]] = []
                with contextlib.suppress(ConnectionClosed):  # closed already: as it should be
                    await old.send(json.dumps({"type": "media_offer"}))
                code, _ = await closed_within(old, 5, seen)
                assert code in (4001, 4005), code
                assert not [m for m in seen if m["type"] == "sdp"], seen

    asyncio.run(scenario())
    assert proxy.offers[pid] == 0, "the gateway built a peer connection for a removed participant"


def test_standing_is_read_again_before_media_and_host_actions(srv: Any, redis_url: str,
                                                             proxy: CountingProxy) -> None:
    made = room(srv.url)
    host = join(srv.url, made["room_id"], "Lan", made["host_key"])
    cohost = join(srv.url, made["room_id"], "Mallory", made["host_key"])
    guest = join(srv.url, made["room_id"], "Eve")
    chatty = join(srv.url, made["room_id"], "Trudy")

    async def scenario() -> None:
        async with socket(srv.url, made["room_id"], host["token"]) as wh, \
                socket(srv.url, made["room_id"], cohost["token"]) as wc, \
                socket(srv.url, made["room_id"], guest["token"]) as wg, \
                socket(srv.url, made["room_id"], chatty["token"]) as wt:
            for ws in (wh, wc, wg, wt):
                await next_event(ws, "welcome")
            # the guest is still in: an offer goes through
            await wg.send(json.dumps({"type": "media_offer"}))
            assert (await next_event(wg, "sdp", 15))["sdp"].startswith("v=0")
            _ban_silently(redis_url, made["room_id"], guest["participant_id"])
            _ban_silently(redis_url, made["room_id"], cohost["participant_id"])
            _ban_silently(redis_url, made["room_id"], chatty["participant_id"])
            await wt.send(json.dumps({"type": "speaking", "on": True}))  # reaches no one
            assert (await next_event(wt, "error"))["code"] == "removed"
            assert (await closed_within(wt, 5))[0] == 4001
            await wg.send(json.dumps({"type": "media_offer"}))
            assert (await next_event(wg, "error"))["code"] == "removed"
            assert (await closed_within(wg, 5))[0] == 4001
            await wc.send(json.dumps({"type": "end"}))  # a removed host's socket ends nothing
            assert (await next_event(wc, "error"))["code"] == "removed"
            assert (await closed_within(wc, 5))[0] == 4001
            seen: list[dict[str, Any]] = []
            await wh.send(json.dumps({"type": "ping"}))
            deadline = time.monotonic() + 5
            while not seen or seen[-1]["type"] != "pong":
                seen.append(json.loads(await asyncio.wait_for(wh.recv(),
                                                              deadline - time.monotonic())))
            assert not [m for m in seen if m["type"] == "speaking"
                        and m["participant"] == chatty["participant_id"]], seen

    asyncio.run(scenario())
    assert proxy.offers[guest["participant_id"]] == 1
    assert httpx.post(f"{srv.url}/api/rooms/{made['room_id']}/join",
                      json={"name": "Late", "speak": "en", "captions": "en"}).status_code == 200


def test_a_removed_participant_reads_no_transcript_and_the_token_stays_out_of_urls(
        srv: Any, redis_url: str) -> None:
    made = room(srv.url)
    host = join(srv.url, made["room_id"], "Lan", made["host_key"])
    guest = join(srv.url, made["room_id"], "Mallory")
    url = f"{srv.url}/api/rooms/{made['room_id']}/transcript"

    def read(bearer: str, **params: str) -> httpx.Response:
        return httpx.get(url, params=params, headers={"Authorization": f"Bearer {bearer}"})

    async def scenario() -> None:
        red = redis.asyncio.Redis.from_url(redis_url)
        await append_segment(red, made["room_id"], Segment("Lan", host["participant_id"], 0, 900,
                                                           "en", "before", "trước", "vi"))
        await red.aclose()
        allowed = read(guest["token"])
        assert allowed.status_code == 200 and "before" in allowed.text
        async with socket(srv.url, made["room_id"], host["token"]) as wh:
            await next_event(wh, "welcome")
            await wh.send(json.dumps({"type": "remove", "target": guest["participant_id"]}))
            await next_event(wh, "removed")

    asyncio.run(scenario())
    after = read(guest["token"])
    assert after.status_code == 403 and after.json()["error"]["code"] == "removed"
    in_url = httpx.get(url, params={"token": host["token"]})
    assert in_url.status_code == 400 and in_url.json()["error"]["code"] == "token_in_url"
    both = read(host["token"], token=host["token"], format="json")  # a URL token is never taken
    assert both.status_code == 400
    download = read(host["token"], format="vtt")
    assert download.status_code == 200 and "before" in download.text
    assert download.headers["x-content-type-options"] == "nosniff"


def test_the_token_expiry_closes_the_socket_and_renewal_keeps_the_call(srv: Any) -> None:
    made = room(srv.url)
    me = join(srv.url, made["room_id"], "Mallory")
    pid, room_id = me["participant_id"], made["room_id"]
    short = tokens.issue(SECRET, room_id, pid, "guest", 3)  # the end of a 4 h token, sooner
    renew_url = f"{srv.url}/api/rooms/{room_id}/token"

    async def scenario() -> None:
        async with socket(srv.url, room_id, short) as ws:
            await next_event(ws, "welcome")
            seen: list[dict[str, Any]] = []
            code, reason = await closed_within(ws, 8, seen)
            assert code == 4006 and reason.startswith("token expired")
            assert [m["code"] for m in seen if m["type"] == "error"] == ["token_expired"]
        # the page's way: a fresh token ahead of expiry, then a new socket that replaces the old
        short2 = tokens.issue(SECRET, room_id, pid, "guest", 5)
        expires = jwt.decode(short2, options={"verify_signature": False})["exp"]
        async with socket(srv.url, room_id, short2) as old:
            await next_event(old, "welcome")
            renewed = httpx.post(renew_url, headers={"Authorization": f"Bearer {short2}"})
            assert renewed.status_code == 200, renewed.text
            fresh = renewed.json()
            claims = jwt.decode(fresh["token"], SECRET, algorithms=["HS256"],
                                issuer="jbcalling-signaling")
            assert claims["sub"] == pid and claims["exp"] > time.time() + 3600
            async with socket(srv.url, room_id, fresh["token"]) as new:
                await next_event(new, "welcome")
                assert (await closed_within(old, 5))[0] == 4005
                await asyncio.sleep(max(0.0, expires - time.time()) + 0.3)  # past its exp
                await new.send(json.dumps({"type": "ping"}))
                await next_event(new, "pong")

    asyncio.run(scenario())
    expired = tokens.issue(SECRET, room_id, pid, "guest", -5)
    refused = httpx.post(renew_url, headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert httpx.post(renew_url, params={"token": short}).status_code == 400


def test_a_removed_participant_cannot_renew(srv: Any) -> None:
    made = room(srv.url)
    host = join(srv.url, made["room_id"], "Lan", made["host_key"])
    guest = join(srv.url, made["room_id"], "Mallory")

    async def scenario() -> None:
        async with socket(srv.url, made["room_id"], host["token"]) as wh:
            await next_event(wh, "welcome")
            await wh.send(json.dumps({"type": "remove", "target": guest["participant_id"]}))
            await next_event(wh, "removed")

    asyncio.run(scenario())
    resp = httpx.post(f"{srv.url}/api/rooms/{made['room_id']}/token",
                      headers={"Authorization": f"Bearer {guest['token']}"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "removed"


def test_the_page_connects_only_to_its_own_origin_and_nothing_is_sniffed(srv: Any) -> None:
    host = srv.url.removeprefix("http://")
    for path in ("/", "/r/AAAAAAAAAAAAAAAAAAAAAA"):
        resp = httpx.get(srv.url + path)
        csp = dict(d.strip().split(" ", 1) for d in resp.headers["content-security-policy"]
                   .split(";"))
        assert csp["connect-src"].split() == ["'self'", f"ws://{host}"], csp["connect-src"]
        assert resp.headers["x-content-type-options"] == "nosniff"
    # a Host that tries to add a directive gets no WebSocket origin at all
    evil = httpx.get(srv.url + "/", headers={"Host": "a.example; script-src *"})
    assert "script-src *" not in evil.headers["content-security-policy"]
    assert re.search(r"connect-src 'self';", evil.headers["content-security-policy"])
    for resp in (httpx.get(srv.url + "/static/app.js"), httpx.post(srv.url + "/api/rooms"),
                 httpx.get(srv.url + "/openapi.json"), httpx.get(srv.url + "/static/nothing.js"),
                 httpx.get(srv.url + "/health")):
        assert resp.headers.get("x-content-type-options") == "nosniff", resp.request.url

