"""``video_visibility`` through signaling: real Redis, a real uvicorn server, real WebSocket
clients. A bad list is refused with a reason and the socket goes on; the message has its own
rate limit. (What the gateway does with a good list: tests/integration/test_video_pause.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from signaling_client import join, next_event, room, settings_for, socket

from conftest import ServedApp
from jbcalling.common.protocol import MAX_HIDDEN_TILES
from jbcalling.signaling.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def srv(redis_url: str) -> Iterator[Any]:
    # no gateway for this room: a good list is accepted and goes nowhere
    with ServedApp(create_app(settings_for(redis_url))) as s:
        yield s


def test_a_bad_hidden_list_is_refused_with_a_reason(srv: Any) -> None:
    made = room(srv.url)
    rid = made["room_id"]
    an = join(srv.url, rid, "An", made["host_key"])
    binh = join(srv.url, rid, "Binh")

    async def answer(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
        """The error a message got, or (no error) the ``speaking`` event of a message sent after
        it: signaling handles a socket's messages in order, so an error would come first."""
        await ws.send(json.dumps(message))
        await ws.send(json.dumps({"type": "speaking", "on": False}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if event["type"] in ("error", "speaking"):
                return dict(event)

    async def scenario() -> None:
        async with socket(srv.url, rid, an["token"]) as ws, socket(srv.url, rid, binh["token"]):
            await next_event(ws, "welcome")
            other = binh["participant_id"]
            refused = {
                "not a list": ({"hidden": other}, "bad_message"),
                "no list": ({}, "bad_message"),
                "not ids": ({"hidden": [1, None]}, "bad_message"),
                "too long": ({"hidden": [f"p{i}" for i in range(MAX_HIDDEN_TILES + 1)]},
                             "bad_message"),
                "twice": ({"hidden": [other, other]}, "bad_message"),
                "a stranger": ({"hidden": [other, "nobody-here"]}, "no_such_participant"),
            }
            for why, (fields, code) in refused.items():
                await ws.send(json.dumps({"type": "video_visibility", **fields}))
                got = await next_event(ws, "error")
                assert got["type"] == "error" and got["code"] == code, (why, got)
                assert "video_visibility" in got["message"], (why, got)  # says what was wrong
            # a good list (and one naming the sender itself, which is ignored) is taken quietly
            for good in ([other], [], [other, an["participant_id"]]):
                got = await answer(ws, {"type": "video_visibility", "hidden": good})
                assert got["type"] == "speaking", (good, got)
            # its own bucket: a burst past it is refused as rate_limited, the socket stays open
            for _ in range(12):
                await ws.send(json.dumps({"type": "video_visibility", "hidden": [other]}))
            await ws.send(json.dumps({"type": "speaking", "on": False}))
            errors = []
            while (event := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "speaking":
                if event["type"] == "error":
                    errors.append(event)
            assert errors and all(e["code"] == "rate_limited" and "video_visibility" in e["message"]
                                  for e in errors), errors
            await asyncio.sleep(1.0)  # the bucket refills (2 a second)
            got = await answer(ws, {"type": "video_visibility", "hidden": []})
            assert got["type"] == "speaking", got

    asyncio.run(scenario())
