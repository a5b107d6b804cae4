"""A participant's side of signaling for the attack tests: REST calls, the WebSocket, and
waiting for an event or a close with a bound (an attack that is not stopped must fail the test
in seconds, not hang it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from jbcalling.signaling.settings import SignalingSettings

SECRET = "attack-secret-" + "x" * 32


def fresh_minute(margin_s: float = 5) -> None:
    """Wait, if needed, until a new one-minute rate window has ``margin_s`` seconds to run: a
    count that straddles two windows would see the limit twice."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.05)


def settings_for(redis_url: str, **changes: Any) -> SignalingSettings:
    """Signaling on the test's Redis, no Consul, HTTP rate limits out of the way (other tests
    join from 127.0.0.1 within the same minute)."""
    base: dict[str, Any] = {"redis_url": redis_url, "jwt_secret": SECRET,
                            "consul_http_addr": "http://127.0.0.1:1",
                            "rate_join_per_min": 10_000, "rate_create_per_min": 10_000,
                            "rate_renew_per_min": 10_000}
    # (only the fields this code has: the same tests run against the code before the limits)
    wanted = {**base, **changes}
    return SignalingSettings(**{k: v for k, v in wanted.items()
                                if k in SignalingSettings.model_fields})


# One client (each new one builds its TLS context: slow on a loaded machine), keeping no
# connection open between calls (a pooled socket to a server gone would leak into a later test).
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def room(url: str) -> dict[str, str]:
    resp = HTTP.post(url + "/api/rooms")
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def join(url: str, room_id: str, name: str, host_key: str | None = None) -> dict[str, Any]:
    resp = HTTP.post(f"{url}/api/rooms/{room_id}/join",
                      json={"name": name, "speak": "en", "captions": "vi", "host_key": host_key})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def socket(url: str, room_id: str, token: str) -> Any:
    return connect(f"{url.replace('http', 'ws', 1)}/ws/rooms/{room_id}?token={token}",
                   open_timeout=10, max_size=None)


async def next_event(ws: Any, kind: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if msg["type"] == kind:
            return dict(msg)


async def closed_within(ws: Any, timeout: float,
                        seen: list[dict[str, Any]] | None = None) -> tuple[int, str]:
    """The close code and reason, if the server closes ``ws`` within ``timeout`` seconds
    (AssertionError if it does not); the events received meanwhile go to ``seen``."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            msg = await asyncio.wait_for(ws.recv(), left)
            if seen is not None and isinstance(msg, str):
                seen.append(json.loads(msg))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame (no code)"
        return exc.rcvd.code, exc.rcvd.reason
    except TimeoutError:
        raise AssertionError(f"the server did not close the socket within {timeout} s") from None


class CountingProxy:
    """An HTTP front for a real gateway that counts the peer-connection offers signaling asks
    for, per participant: what the gateway would have built for an attacker."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.url = ""  # where it is served, set by the fixture
        self.offers: Counter[str] = Counter()
        self.app = FastAPI()

        @self.app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
        async def forward(path: str, request: Request) -> Response:
            parts = path.split("/")
            if request.method == "POST" and parts[-1] == "offer":  # v1/rooms/<r>/peers/<p>/offer
                self.offers[parts[-2]] += 1
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("content-type", "x-jb-gateway-token")}
            async with httpx.AsyncClient(timeout=15) as http:
                resp = await http.request(request.method, f"{self.target}/{path}",
                                          content=await request.body(), headers=headers)
            return Response(resp.content, resp.status_code,
                            media_type=resp.headers.get("content-type"))
