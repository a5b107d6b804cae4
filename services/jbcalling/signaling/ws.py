"""The participant WebSocket: presence, language settings, host actions, captions.

Each replica keeps its own sockets and subscribes once to every room's event channel
(``jb:room:*:events``); an event published by any replica, or by the gateway (captions), reaches
every socket of that room on every replica.

Close codes: 4000 bad or expired token, 4001 removed by the host, 4002 room ended,
4003 Origin not allowed, 4004 room full or unknown, 1009 message too big.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from jbcalling.common.protocol import (
    EVENTS_PATTERN,
    HOST_ONLY,
    Ended,
    Error,
    Event,
    Left,
    MediaReady,
    Muted,
    Pong,
    Present,
    Removed,
    Sdp,
    SettingsChange,
    SettingsChanged,
    Speaking,
    Welcome,
    client_message_types,
    room_of_channel,
)
from jbcalling.signaling import tokens
from jbcalling.signaling.media import MediaError, MediaRelay
from jbcalling.signaling.rooms import RoomStore
from jbcalling.signaling.settings import SignalingSettings

log = logging.getLogger("jbcalling.signaling.ws")
HEARTBEAT_S = 20
HOST_ACTIONS = HOST_ONLY
PER_TYPE = client_message_types()  # the messages of protocol.CLIENT_MESSAGES


class Hub:
    """The sockets of this replica, by room, fed by one Redis pattern subscription."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.sockets: dict[str, dict[str, WebSocket]] = defaultdict(dict)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as ps:
                    await ps.psubscribe(EVENTS_PATTERN)
                    async for msg in ps.listen():
                        if msg["type"] == "pmessage":
                            await self._dispatch(room_of_channel(msg["channel"]), msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: keep the sockets, resubscribe
                log.warning("event subscription lost; retrying", exc_info=True)
                await asyncio.sleep(1)

    async def _dispatch(self, room: str, data: str | bytes) -> None:
        """Forward one published event as it is (routing reads only ``type``, ``to`` and
        ``participant``; the publishers built it from protocol models)."""
        event = json.loads(data)
        text = data.decode() if isinstance(data, bytes) else data
        targets = self.sockets.get(room, {})
        for pid, ws in list(targets.items()):
            if event.get("to") not in (None, pid):  # addressed to one participant
                continue
            await _send_text(ws, text)
            if event["type"] == "removed" and event.get("participant") == pid:
                await ws.close(4001, "removed by the host")
            elif event["type"] == "ended":
                await ws.close(4002, "the host ended the room")


async def _send(ws: WebSocket, event: Event) -> None:
    await _send_text(ws, event.to_json())


async def _send_text(ws: WebSocket, text: str) -> None:
    with contextlib.suppress(Exception):  # a closing socket is not an error of the room
        await ws.send_text(text)


def origin_allowed(settings: SignalingSettings, origin: str | None, host: str | None) -> bool:
    if not origin:  # not a browser (a probe, a test client): browsers always send one
        return True
    if settings.public_url:
        allowed = {settings.public_url.rstrip("/")}
    else:  # no configured origin: the page must come from the host it connects to
        allowed = {f"http://{host}", f"https://{host}"}
    allowed |= {o.rstrip("/") for o in settings.allowed_origins}
    return origin.rstrip("/") in allowed


async def serve(ws: WebSocket, room: str, settings: SignalingSettings, store: RoomStore,
                hub: Hub, media: MediaRelay) -> None:
    # Accept first, then refuse with a close code and reason: a refusal during the handshake
    # reaches a browser as a bare 1006 with no reason to show.
    await ws.accept()
    if not origin_allowed(settings, ws.headers.get("origin"), ws.headers.get("host")):
        await ws.close(4003, "origin not allowed")
        return
    try:
        claims = tokens.verify(settings.jwt_secret.get_secret_value(),
                               ws.query_params.get("token", ""), room)
    except tokens.TokenError as exc:
        await ws.close(4000, f"token {exc.reason}: join the room again")
        return
    me = await store.get(room, claims.participant)
    if me is None or await store.is_banned(room, claims.participant):
        await ws.close(4004, "not in this room (removed, ended or expired): join again")
        return
    me.connected = True
    await store.save(room, me)
    hub.sockets[room][me.id] = ws
    people = [p.public() for p in await store.participants(room)]
    await _send(ws, Welcome(you=me.public(), participants=people))
    await store.publish(room, Present(participant=me.public()))
    try:
        await _loop(ws, room, me.id, claims.role, settings, store, media)
    finally:
        await _gone(ws, room, me.id, hub, store, media)


async def _gone(ws: WebSocket, room: str, pid: str, hub: Hub, store: RoomStore,
                media: MediaRelay) -> None:
    # A reloaded page's new socket (same token) may already be in: the old socket's close must
    # not take its place in the hub, its media or its presence. No await before the pop.
    if hub.sockets.get(room, {}).get(pid) is not ws:
        return
    hub.sockets[room].pop(pid, None)
    if not hub.sockets[room]:
        hub.sockets.pop(room, None)
    await media.leave(room, pid)
    if pid in hub.sockets.get(room, {}):
        return  # came back meanwhile
    # Keep the seat for a while: a page reload or a network blip reconnects with the same
    # token; rooms.STALE_UNCONNECTED_S later the seat is free again.
    gone = await store.get(room, pid)
    if gone is not None:
        gone.connected = False
        gone.joined_at = time.time()
        await store.save(room, gone)
        await store.publish(room, Left(participant=pid))


async def _loop(ws: WebSocket, room: str, pid: str, role: str, settings: SignalingSettings,
                store: RoomStore, media: MediaRelay) -> None:
    while True:
        try:
            raw = await asyncio.wait_for(ws.receive(), timeout=HEARTBEAT_S)
        except TimeoutError:
            await store.touch(room)  # a connected participant keeps the room open
            continue
        except (WebSocketDisconnect, RuntimeError):
            return
        if raw["type"] == "websocket.disconnect":
            return
        text = raw.get("text")
        if text is None:
            await _send(ws, _error("bad_message", "send JSON text messages, not binary"))
            continue
        if len(text.encode()) > settings.ws_max_message_bytes:
            await ws.close(1009, f"message over {settings.ws_max_message_bytes} bytes")
            return
        await store.touch(room)
        try:
            msg = json.loads(text)
            kind = msg["type"]
        except (ValueError, KeyError, TypeError):
            await _send(ws, _error("bad_message", "a message is a JSON object with a 'type'"))
            continue
        if kind not in PER_TYPE:
            await _send(ws, _error("unknown_type", f"unknown message type {str(kind)[:40]!r}"))
            continue
        if kind in HOST_ACTIONS and role != "host":
            await _send(ws, _error("forbidden", f"only the host may {kind}"))
            continue
        if kind in ("media_offer", "sdp", "ice"):
            await _media(ws, room, pid, kind, msg, media)
        else:
            await _handle(ws, room, pid, kind, msg, store)


async def _media(ws: WebSocket, room: str, pid: str, kind: str, msg: dict[str, Any],
                 media: MediaRelay) -> None:
    """The gateway makes the offer; the browser answers with its complete SDP (aiortc does not
    trickle ICE, so candidates travel inside the SDP and separate "ice" messages are ignored)."""
    try:
        if kind == "media_offer":
            await _send(ws, Sdp(sdp=await media.offer(room, pid)))
        elif kind == "sdp":
            sdp = msg.get("sdp")
            if not isinstance(sdp, str) or not sdp.startswith("v=0"):
                await _send(ws, _error("bad_sdp", "sdp: send the answer's SDP text (v=0...)"))
                return
            await media.answer(room, pid, sdp)
            await _send(ws, MediaReady())
    except MediaError as exc:
        await _send(ws, _error(exc.code, exc.message))


async def _handle(ws: WebSocket, room: str, pid: str, kind: str, msg: dict[str, Any],
                  store: RoomStore) -> None:
    if kind == "ping":
        await _send(ws, Pong())
    elif kind == "settings":
        try:
            change = SettingsChange.model_validate(msg.get("settings") or {})
        except ValidationError:
            await _send(ws, _error("bad_message", "settings: speak/captions are vi or en"))
            return
        me = await store.get(room, pid)
        if me is None:
            return
        for key, value in change.model_dump(exclude_none=True).items():
            setattr(me, key, value)
        await store.save(room, me)
        await store.publish(room, SettingsChanged(participant=me.public()))
    elif kind == "speaking":
        await store.publish(room, Speaking(participant=pid, on=bool(msg.get("on"))))
    elif kind in ("mute", "remove"):
        target = await store.get(room, str(msg.get("target", "")))
        if target is None:
            await _send(ws, _error("no_such_participant", "that participant is not in the room"))
            return
        if kind == "mute":
            target.muted = True
            await store.save(room, target)
            await store.publish(room, Muted(participant=target.id, by=pid))
        else:
            await store.ban(room, target.id)
            await store.publish(room, Removed(participant=target.id, by=pid))
    elif kind == "end":
        await store.end(room)
        await store.publish(room, Ended(by=pid))


def _error(code: str, message: str) -> Error:
    return Error(code=code, message=message)


__all__ = ["Hub", "origin_allowed", "serve"]
