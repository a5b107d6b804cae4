"""The participant WebSocket: presence, language settings, host actions, captions.

Each replica keeps its own sockets and subscribes once to every room's event channel
(``jb:room:*:events``); an event published by any replica, or by the gateway (captions), reaches
every socket of that room on every replica.

Close codes (docs/protocol.md, "Sessions and limits"): 4000 bad or expired token, 4001 removed
by the host, 4002 room ended, 4003 Origin not allowed, 4004 not in the room (no seat, room full
or unknown), 4005 replaced by a newer socket of the same participant, 4006 the token expired
while connected, 4008 too many messages (sustained rate-limit excess), 1009 message too big,
1011 server error (reconnect).

A participant has one live socket: the newest (its id in Redis, ``RoomStore.claim_socket``);
every replica closes an older one when the newcomer's ``present`` event arrives. Membership,
ban and that the socket is the live one are read again from Redis before every media and host
action and every message that reaches the room (``speaking``, ``settings``) or the gateway
(``video_visibility``), since a ``removed`` event can miss a socket (pub/sub delivers at most
once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
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
    Participant,
    Pong,
    Present,
    Removed,
    RoomLocked,
    Sdp,
    SettingsChange,
    SettingsChanged,
    Speaking,
    Waiting,
    Welcome,
    client_message_types,
    room_of_channel,
)
from jbcalling.signaling import chat, hands, metrics, mute, tokens, visibility
from jbcalling.signaling.chat import ChatRelay
from jbcalling.signaling.media import MediaError, MediaRelay
from jbcalling.signaling.ratelimit import RateLimiter, SocketLimits
from jbcalling.signaling.rooms import RoomStore, Standing
from jbcalling.signaling.settings import DETECT_UNAVAILABLE, SignalingSettings
from jbcalling.signaling.waiting import WaitingRoom

log = logging.getLogger("jbcalling.signaling.ws")
HEARTBEAT_S = 20
HOST_ACTIONS = HOST_ONLY
HOST_EVENTS = frozenset({"waiting"})  # events only hosts receive: the lobby's names
PER_TYPE = client_message_types()  # the messages of protocol.CLIENT_MESSAGES
MEDIA = frozenset({"media_offer", "sdp", "ice"})
# Counted per room (all replicas): what reaches the gateway, and what reaches everyone.
ROOM_MEDIA = frozenset({"media_offer", "sdp"})
MEETING = frozenset({"chat", "hand", "react", "lock", "admit"})  # chat.py, hands.py, waiting.py
ROOM_EVENTS = frozenset({"speaking", "settings"}) | HOST_ACTIONS | MEETING
# Checked again against Redis before they run (see the module docstring): all of the above,
# and which tiles a page hides (it reaches the gateway; limited per socket, not per room).
NEEDS_STANDING = ROOM_MEDIA | ROOM_EVENTS | {"video_visibility"}
CLOSE_FOR = {Standing.REMOVED: (4001, "removed by the host"),
             Standing.GONE: (4004, "not in this room (removed, ended or expired): join again"),
             Standing.REPLACED: (4005, "replaced by a newer connection of this participant")}


class Hub:
    """The sockets of this replica, by room, fed by one Redis pattern subscription."""

    def __init__(self, redis: aioredis.Redis, store: RoomStore | None = None) -> None:
        self.redis = redis
        self.store = store
        self.sockets: dict[str, dict[str, WebSocket]] = defaultdict(dict)
        self.socket_ids: dict[WebSocket, str] = {}
        self.hosts: set[WebSocket] = set()  # sockets of hosts: the lobby's names go only there
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
        if event["type"] == "present":
            await self._close_replaced(room, str(event["participant"]["id"]))
        for pid, ws in list(targets.items()):
            if event.get("to") not in (None, pid):  # addressed to one participant
                continue
            if event["type"] in HOST_EVENTS and ws not in self.hosts:
                continue
            await _send_text(ws, text)
            if event["type"] == "removed" and event.get("participant") == pid:
                await ws.close(4001, "removed by the host")
            elif event["type"] == "ended":
                await ws.close(4002, "the host ended the room")

    async def _close_replaced(self, room: str, pid: str) -> None:
        """A socket of ``pid`` connected (on some replica): close ours if it is not the live one."""
        ws = self.sockets.get(room, {}).get(pid)
        if ws is None or self.store is None:
            return
        live = await self.store.live_socket(room, pid)
        if live and live != self.socket_ids.get(ws) and self.sockets.get(room, {}).get(pid) is ws:
            await _close(ws, *CLOSE_FOR[Standing.REPLACED])
            await _gone(ws, room, pid, self, self.store, None)

    def add(self, room: str, pid: str, ws: WebSocket, socket_id: str,
            host: bool = False) -> WebSocket | None:
        """Make ``ws`` the participant's socket here; the one it replaces, if any."""
        old = self.sockets[room].get(pid)
        self.sockets[room][pid] = ws
        self.socket_ids[ws] = socket_id
        if host:
            self.hosts.add(ws)
        return old if old is not ws else None

    def forget(self, ws: WebSocket) -> str | None:
        """``ws`` is gone: its socket id, if it had one here."""
        self.hosts.discard(ws)
        return self.socket_ids.pop(ws, None)


async def _send(ws: WebSocket, event: Event) -> None:
    await _send_text(ws, event.to_json())


async def _send_text(ws: WebSocket, text: str) -> None:
    with contextlib.suppress(Exception):  # a closing socket is not an error of the room
        await ws.send_text(text)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # already closed
        await ws.close(code, reason)


def origin_allowed(settings: SignalingSettings, origin: str | None, host: str | None) -> bool:
    if not origin:  # not a browser (a probe, a test client): browsers always send one
        return True
    if settings.public_url:
        allowed = {settings.public_url.rstrip("/")}
    else:  # no configured origin: the page must come from the host it connects to
        allowed = {f"http://{host}", f"https://{host}"}
    allowed |= {o.rstrip("/") for o in settings.allowed_origins}
    return origin.rstrip("/") in allowed


@dataclass
class Meeting:
    """What the meeting features need besides the room store: chat's translator, the lobby."""

    chat: ChatRelay
    lobby: WaitingRoom


async def serve(ws: WebSocket, room: str, settings: SignalingSettings, store: RoomStore,
                hub: Hub, media: MediaRelay, limiter: RateLimiter, meeting: Meeting) -> None:
    # Accept first, then refuse with a close code and reason: a refusal during the handshake
    # reaches a browser as a bare 1006 with no reason to show.
    await ws.accept()
    if not origin_allowed(settings, ws.headers.get("origin"), ws.headers.get("host")):
        metrics.refused(ws, "origin")
        await ws.close(4003, "origin not allowed")
        return
    try:
        claims = tokens.verify(settings.jwt_secret.get_secret_value(),
                               ws.query_params.get("token", ""), room)
    except tokens.TokenError as exc:
        metrics.refused(ws, "bad_token")
        await ws.close(4000, f"token {exc.reason}: join the room again")
        return
    me = await store.get(room, claims.participant)
    if me is None or await store.is_banned(room, claims.participant):
        metrics.refused(ws, "not_in_room" if me is None else "banned")
        await ws.close(4004, "not in this room (removed, ended or expired): join again")
        return
    me.connected = True
    await store.save(room, me)
    socket_id = secrets.token_urlsafe(12)
    await store.claim_socket(room, me.id, socket_id)
    replaced = hub.add(room, me.id, ws, socket_id, host=claims.role == "host")
    if replaced is not None:  # the same participant's older socket on this replica
        hub.forget(replaced)
        await _close(replaced, *CLOSE_FOR[Standing.REPLACED])
    people = [p.public() for p in await store.participants(room)]
    await _send(ws, Welcome(you=me.public(), participants=people,
                            hands=await hands.queue(store, room),
                            locked=await store.is_locked(room)))
    if claims.role == "host":  # who waits in the lobby (a host who comes back sees them)
        await _send(ws, Waiting(waiting=await meeting.lobby.pending(room)))
    await store.publish(room, Present(participant=me.public()))
    if (m := metrics.of(ws)) is not None:
        m.connects.inc()
    session = _Session(ws, room, me.id, claims.role, socket_id, claims.expires, settings, store,
                       media, limiter, meeting)
    try:
        await _loop(session)
    except Exception:  # a bug must not drop the socket without a close code
        log.exception("participant socket failed", extra={"personal": {"room": room}})
        await _close(ws, 1011, "server error: reconnect")
    finally:
        await _gone(ws, room, me.id, hub, store, media)


async def _gone(ws: WebSocket, room: str, pid: str, hub: Hub, store: RoomStore,
                media: MediaRelay | None) -> None:
    # A reloaded page's new socket (same token) may already be in: the old socket's close must
    # not take its place in the hub, its media or its presence. No await before the pop.
    if hub.sockets.get(room, {}).get(pid) is not ws:
        hub.forget(ws)
        return
    hub.sockets[room].pop(pid, None)
    mine = hub.forget(ws)
    if not hub.sockets[room]:
        hub.sockets.pop(room, None)
    if media is None:  # replaced by a socket on another replica, which now owns the media
        return
    if not await _still_live(store, room, pid, mine):
        return  # a newer socket (on any replica) owns the media and the presence
    await media.leave(room, pid)
    if pid in hub.sockets.get(room, {}) or not await _still_live(store, room, pid, mine):
        return  # came back meanwhile: no `left` about someone connected
    # Keep the seat for a while: a page reload or a network blip reconnects with the same
    # token; rooms.STALE_UNCONNECTED_S later the seat is free again.
    gone = await store.get(room, pid)
    if gone is not None:
        gone.connected = False
        gone.joined_at = time.time()
        await store.save(room, gone)
        await store.publish(room, Left(participant=pid))


async def _still_live(store: RoomStore, room: str, pid: str, socket_id: str | None) -> bool:
    live = await store.live_socket(room, pid)
    return not live or live == socket_id


@dataclass
class _Session:
    """One participant socket and what its loop checks every message against."""

    ws: WebSocket
    room: str
    pid: str
    role: str
    socket_id: str
    expires: int  # the token's exp: the socket closes then (4006)
    settings: SignalingSettings
    store: RoomStore
    media: MediaRelay
    limiter: RateLimiter
    meeting: Meeting
    limits: SocketLimits = field(init=False)
    # A chat waits for mt off the socket's loop, one message after the other (their order).
    chats: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.limits = SocketLimits(self.settings.ws_rate_limits, self.settings.ws_rate_strikes)


async def _loop(s: _Session) -> None:
    ws, room, settings = s.ws, s.room, s.settings
    while True:
        left = s.expires - time.time()
        if left <= 0:
            await _send(ws, _error("token_expired", "your token expired: the page renews it "
                                   "before (POST /api/rooms/{id}/token); join the room again"))
            await _close(ws, 4006, "token expired: join the room again")
            return
        try:
            raw = await asyncio.wait_for(ws.receive(), timeout=min(HEARTBEAT_S, left))
        except TimeoutError:
            await s.store.touch(room)  # a connected participant keeps the room open
            continue
        except (WebSocketDisconnect, RuntimeError):
            return
        if raw["type"] == "websocket.disconnect":
            return
        text = raw.get("text")
        if text is not None and len(text.encode()) > settings.ws_max_message_bytes:
            metrics.refused(ws, "message_too_big")
            await _close(ws, 1009, f"message over {settings.ws_max_message_bytes} bytes")
            return
        msg = _parse(text)
        kind = msg["type"] if msg is not None and msg["type"] in PER_TYPE else "other"
        if not s.limits.allow(kind):
            if not await _refuse(s, kind):
                return
            continue
        if msg is None:
            why = "a message is a JSON object with a string 'type'" if text is not None \
                else "send JSON text messages, not binary"
            await _send(ws, _error("bad_message", why))
            continue
        if kind == "other":
            await _send(ws, _error("unknown_type",
                                   f"unknown message type {str(msg['type'])[:40]!r}"))
            continue
        if kind in HOST_ACTIONS and s.role != "host":
            metrics.refused(ws, "forbidden")
            await _send(ws, _error("forbidden", f"only the host may {kind}"))
            continue
        if kind in NEEDS_STANDING:
            standing = await s.store.standing(room, s.pid, s.socket_id)
            if standing is not Standing.MEMBER:
                code, reason = CLOSE_FOR[standing]
                await _send(ws, _error(standing.value, reason))
                await _close(ws, code, reason)
                return
        if not await _room_allows(s, kind):
            if not await _refuse(s, kind):
                return
            continue
        await s.store.touch(room)
        if kind in MEDIA:
            await _media(ws, room, s.pid, kind, msg, s.media)
        elif kind == "video_visibility":
            refused = await visibility.apply(s.store, s.media, room, s.pid, msg)
            if refused is not None:
                await _send(ws, refused)
        elif kind in MEETING:
            refused = await _meeting(s, kind, msg)
            if refused is not None:
                await _send(ws, refused)
        elif (kind == "settings" and not s.settings.speak_auto and isinstance(
                msg.get("settings"), dict) and msg["settings"].get("speak") == "auto"):
            await _send(ws, _error("detect_unavailable", DETECT_UNAVAILABLE))
        else:
            await _handle(ws, room, s.pid, kind, msg, s.store, s.media)


def _parse(text: str | None) -> dict[str, Any] | None:
    """The message if it is a JSON object whose ``type`` is a string, else None."""
    if text is None:
        return None
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than json handles
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return None
    return msg


async def _room_allows(s: _Session, kind: str) -> bool:
    """The room's budget, shared by all its sockets on every replica."""
    if kind in ROOM_MEDIA:
        action, per_min = "room-media", s.settings.rate_room_media_per_min
    elif kind in ROOM_EVENTS:
        action, per_min = "room-events", s.settings.rate_room_events_per_min
    else:
        return True
    ok, _ = await s.limiter.allow(action, s.room, per_min)
    return ok


async def _refuse(s: _Session, kind: str) -> bool:
    """Refuse one message over a limit; False (and the socket closed) when the excess is
    sustained: the socket has used up its strikes."""
    if not s.limits.strike():
        log.warning("socket closed for flooding", extra={"kind": kind,
                                                         "personal": {"room": s.room}})
        metrics.refused(s.ws, "flooding")
        await _close(s.ws, 4008, "too many messages: slow down")
        return False
    metrics.refused(s.ws, "rate_limited_message")
    await _send(s.ws, _error("rate_limited", f"too many {kind} messages: this one was dropped; "
                             "slow down"))
    return True


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
                  store: RoomStore, media: MediaRelay) -> None:
    if kind == "ping":
        await _send(ws, Pong())
    elif kind == "settings":
        try:
            change = SettingsChange.model_validate(msg.get("settings") or {})
        except ValidationError:
            await _send(ws, _error("bad_message",
                                   "settings: speak is vi, en or auto; captions vi or en"))
            return
        me, refused = await mute.apply_settings(store, media, room, pid, change)
        if refused is not None:
            await _send(ws, refused)
        if me is not None:
            await store.publish(room, SettingsChanged(participant=me.public()))
    elif kind == "speaking":
        on = bool(msg.get("on"))
        if on and await mute.host_muted(store, room, pid):
            return  # nobody hears them: their page must not show them speaking either
        await store.publish(room, Speaking(participant=pid, on=on))
    elif kind in ("mute", "remove"):
        target = await store.get(room, str(msg.get("target", "")))
        if target is None:
            await _send(ws, _error("no_such_participant", "that participant is not in the room"))
            return
        if kind == "mute":
            muted = msg.get("muted", True)
            if not isinstance(muted, bool):
                await _send(ws, _error("bad_message", "mute: muted is true or false"))
                return
            person, refused = await mute.host_mute(store, media, room, pid, target.id, muted)
            if refused is not None:
                await _send(ws, refused)
            elif person is not None:
                await store.publish(room, Muted(participant=person.id, by=pid, muted=muted))
                await store.publish(room, SettingsChanged(participant=person.public()))
        else:
            await store.ban(room, target.id)
            await store.publish(room, Removed(participant=target.id, by=pid))
            await hands.lower(store, room, target.id, pid)
    elif kind == "end":
        await store.end(room)
        await store.publish(room, Ended(by=pid))


async def _meeting(s: _Session, kind: str, msg: dict[str, Any]) -> Error | None:
    """Chat, hands, reactions, lock and admit; the error to answer, if any."""
    if kind == "chat":
        text, refused = chat.clean(msg.get("text"), s.settings.chat_max_chars)
        me = await s.store.get(s.room, s.pid)
        if refused is None and me is not None:
            task = asyncio.create_task(_chat(s, me, text))
            s.tasks.add(task)
            task.add_done_callback(s.tasks.discard)
        return refused
    if kind == "hand":
        return await hands.hand(s.store, s.room, s.pid, s.role, msg)
    if kind == "react":
        return await hands.react(s.store, s.room, s.pid, msg)
    if kind == "lock":
        locked = msg.get("locked", True)
        if not isinstance(locked, bool):
            return _error("bad_message", "lock: locked is true or false")
        await s.store.set_locked(s.room, locked)
        await s.store.publish(s.room, RoomLocked(locked=locked, by=s.pid))
        return None
    return await s.meeting.lobby.decide(s.room, msg.get("request"), msg.get("admit", True))


async def _chat(s: _Session, me: Participant, text: str) -> None:
    async with s.chats:
        try:
            await s.meeting.chat.send(s.room, me, text)
        except Exception:  # Redis went away: the sender learns their message did not go out
            log.exception("chat failed", extra={"personal": {"room": s.room}})
            await _send(s.ws, _error("chat_failed", "your message could not be sent: try again"))


def _error(code: str, message: str) -> Error:
    return Error(code=code, message=message)


__all__ = ["Hub", "origin_allowed", "serve"]
