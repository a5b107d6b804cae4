"""Rooms and their participants, kept in Redis so that every signaling replica sees them (the
keys: jbcalling/common/protocol.py).

A room closes by itself after ``room_idle_s`` without activity: every key carries that TTL and
activity (a join, a WebSocket message, a heartbeat) renews it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time

import redis.asyncio as aioredis

from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import (
    ROOM_PARTS_WITH_TTL,
    Event,
    Lang,
    Participant,
    Speaks,
    events_channel,
    room_key,
)

STALE_UNCONNECTED_S = 60  # a join whose WebSocket never came frees its seat after this
SOCKETS = "sockets"  # hash: participant -> the id of their one live socket


class Standing(enum.Enum):
    """A participant's place in a room, as ``RoomStore.standing`` reads it."""

    MEMBER = "member"
    REMOVED = "removed"  # banned by the host
    GONE = "not_in_room"  # no seat: left long ago, or the room ended or closed
    REPLACED = "replaced"  # a newer socket of theirs is the live one


class RoomError(ServiceError):
    """A request about a room that cannot be served; ``status`` is the HTTP status to answer."""


class RoomLocked(RoomError):
    """The room is locked and the joiner is not a host: they wait for a host (waiting.py)."""

    def __init__(self) -> None:
        super().__init__(403, "room_locked", "this room is locked: wait for a host to let you in")


# Add a participant only while the room has a free seat: atomic across replicas.
_ADD_IF_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'ended') == '1' then return -2 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class RoomStore:
    def __init__(self, redis: aioredis.Redis, idle_s: int, max_participants: int) -> None:
        self.redis = redis
        self.idle_s = idle_s
        self.max = max_participants
        self._add = redis.register_script(_ADD_IF_ROOM)

    async def create(self) -> tuple[str, str]:
        """A new room: its id (128 random bits) and the host key that makes a joiner host."""
        room, host_key = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        await self.redis.hset(room_key(room), mapping={
            "created": time.time(), "ended": "0", "host_key_hash": _hash(host_key)})
        await self.redis.expire(room_key(room), self.idle_s)
        return room, host_key

    async def exists(self, room: str) -> bool:
        ended = await self.redis.hget(room_key(room), "ended")
        return ended is not None and ended != b"1"

    async def join(self, room: str, name: str, speak: Speaks, captions: Lang, hear: bool,
                   host_key: str | None) -> Participant:
        meta = await self.redis.hgetall(room_key(room))
        if not meta or meta.get(b"ended") == b"1":
            raise RoomError(404, "room_not_found", "this room does not exist or has ended")
        stored = meta.get(b"host_key_hash", b"")
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        is_host = bool(host_key) and hmac.compare_digest(_hash(host_key or ""), stored)
        if meta.get(b"locked") == b"1" and not is_host:
            raise RoomLocked()
        person = Participant(secrets.token_urlsafe(9), name, speak, captions, hear,
                             "host" if is_host else "guest", time.time())
        await self.seat(room, person)
        return person

    async def seat(self, room: str, person: Participant) -> None:
        """Give ``person`` a seat if the room has one free (atomic across replicas)."""
        await self._drop_stale(room)
        added = await self._add(keys=[room_key(room), room_key(room, "people")],
                                args=[self.max, person.id, person.to_json(), self.idle_s])
        if added == 0:
            raise RoomError(409, "room_full", f"this room is full ({self.max} participants)")
        if added < 0:
            raise RoomError(404, "room_not_found", "this room does not exist or has ended")

    async def set_locked(self, room: str, locked: bool) -> None:
        await self.redis.hset(room_key(room), "locked", "1" if locked else "0")

    async def is_locked(self, room: str) -> bool:
        return await self.redis.hget(room_key(room), "locked") == b"1"

    async def _drop_stale(self, room: str) -> None:
        people = await self.participants(room)
        stale = [p.id for p in people
                 if not p.connected and time.time() - p.joined_at > STALE_UNCONNECTED_S]
        if stale:
            await self.redis.hdel(room_key(room, "people"), *stale)

    async def participants(self, room: str) -> list[Participant]:
        raw = await self.redis.hgetall(room_key(room, "people"))
        return [Participant.parse(v) for v in raw.values()]

    async def get(self, room: str, pid: str) -> Participant | None:
        raw = await self.redis.hget(room_key(room, "people"), pid)
        return Participant.parse(raw) if raw else None

    async def save(self, room: str, person: Participant) -> None:
        await self.redis.hset(room_key(room, "people"), person.id, person.to_json())

    async def leave(self, room: str, pid: str) -> None:
        await self.redis.hdel(room_key(room, "people"), pid)

    async def ban(self, room: str, pid: str) -> None:
        await self.redis.sadd(room_key(room, "banned"), pid)
        await self.redis.expire(room_key(room, "banned"), self.idle_s)
        await self.leave(room, pid)

    async def is_banned(self, room: str, pid: str) -> bool:
        return bool(await self.redis.sismember(room_key(room, "banned"), pid))

    async def end(self, room: str) -> None:
        await self.redis.hset(room_key(room), "ended", "1")
        await self.redis.delete(room_key(room, "people"))

    async def touch(self, room: str) -> None:
        """Activity: push back the idle close of every key of the room."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in (*ROOM_PARTS_WITH_TTL, SOCKETS):
                pipe.expire(room_key(room, part), self.idle_s)
            await pipe.execute()

    async def claim_socket(self, room: str, pid: str, socket_id: str) -> None:
        """Make ``socket_id`` the participant's one live socket (across replicas): any other
        socket of theirs is closed as replaced (ws.py)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(room_key(room, SOCKETS), pid, socket_id)
            pipe.expire(room_key(room, SOCKETS), self.idle_s)
            await pipe.execute()

    async def live_socket(self, room: str, pid: str) -> str | None:
        raw = await self.redis.hget(room_key(room, SOCKETS), pid)
        return raw.decode() if isinstance(raw, bytes) else raw

    async def standing(self, room: str, pid: str, socket_id: str | None = None) -> Standing:
        """Whether ``pid`` may still act in the room (and, given ``socket_id``, through that
        socket): read again before every media and host action and every transcript read,
        since a removal's event may have missed a socket (pub/sub delivers at most once)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sismember(room_key(room, "banned"), pid)
            pipe.hexists(room_key(room, "people"), pid)
            pipe.hget(room_key(room, SOCKETS), pid)
            banned, present, live = await pipe.execute()
        if banned:
            return Standing.REMOVED
        if not present:
            return Standing.GONE
        live = live.decode() if isinstance(live, bytes) else live
        if socket_id is not None and live and live != socket_id:
            return Standing.REPLACED
        return Standing.MEMBER

    async def publish(self, room: str, event: Event) -> None:
        await self.redis.publish(events_channel(room), event.to_json())


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
