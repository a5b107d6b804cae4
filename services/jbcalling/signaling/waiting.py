"""A locked room's waiting room.

A host locks the room (``lock``); a later joiner who is not a host gets no seat and no media:
``POST /api/rooms/{id}/join`` answers 202 with a request id and a *waiting token* (a JWT whose
role is ``waiting``: tokens.verify refuses it everywhere a participant token is asked for), and
the page polls ``GET /api/rooms/{id}/waiting`` with it. A host's ``admit`` seats the joiner with
the same atomic script as a join (rooms.py; the room may be full by then: the host is told) and
the next poll returns what a join returns; a decline is final for that request. Requests live
in ``jb:room:<id>:waiting`` until ``waiting_ttl_s`` after they were made; one whose page stopped
polling for ``STALE_S`` no longer shows to the hosts. When the hosts leave, the requests wait
for a host to come back (hosts get the list when they connect) or lapse.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Literal

from jbcalling.common.protocol import (
    Error,
    Joined,
    Lang,
    Participant,
    Speaks,
    Waiting,
    WaitingPerson,
    room_key,
)
from jbcalling.signaling.rooms import RoomError, RoomStore

STALE_S = 30  # a request not polled this long is hidden from the hosts (the page went away)
MAX_WAITING = 20  # people waiting in one room's lobby at once (joins are rate limited per address)
State = Literal["waiting", "admitted", "declined"]


@dataclass
class Request:
    id: str
    name: str  # personal data
    speak: Speaks
    captions: Lang
    hear_translation: bool
    at: float
    seen: float
    state: State = "waiting"
    participant_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class WaitingRoom:
    def __init__(self, store: RoomStore, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s

    def _key(self, room: str) -> str:
        return room_key(room, "waiting")

    async def enqueue(self, room: str, name: str, speak: Speaks, captions: Lang,
                      hear: bool) -> Request:
        if len(await self.pending(room)) >= MAX_WAITING:
            raise RoomError(429, "lobby_full", f"{MAX_WAITING} people already wait to enter "
                            "this room: try again later")
        now = time.time()
        req = Request(secrets.token_urlsafe(12), name, speak, captions, hear, now, now)
        await self._save(room, req)
        await self.publish(room)
        return req

    async def get(self, room: str, request_id: str) -> Request | None:
        raw = await self.store.redis.hget(self._key(room), request_id)
        if not raw:
            return None
        req = Request(**json.loads(raw))
        return req if time.time() - req.at < self.ttl_s else None

    async def poll(self, room: str, request_id: str) -> Request | None:
        """The request (its page is still there: ``seen`` now), or None when it lapsed."""
        req = await self.get(room, request_id)
        if req is not None:
            req.seen = time.time()
            await self._save(room, req)
        return req

    async def pending(self, room: str) -> list[WaitingPerson]:
        raw = await self.store.redis.hgetall(self._key(room))
        now, out = time.time(), []
        for value in raw.values():
            req = Request(**json.loads(value))
            if req.state == "waiting" and now - req.seen < STALE_S and now - req.at < self.ttl_s:
                out.append((req.at, WaitingPerson(id=req.id, name=req.name, speak=req.speak)))
        return [person for _, person in sorted(out, key=lambda pair: pair[0])]

    async def publish(self, room: str) -> None:
        await self.store.publish(room, Waiting(waiting=await self.pending(room)))

    async def waiting_event(self, room: str) -> Waiting:
        return Waiting(waiting=await self.pending(room))

    async def decide(self, room: str, request_id: object, admit: object) -> Error | None:
        """A host's ``admit`` message: seat the joiner or decline them."""
        if not isinstance(request_id, str) or not isinstance(admit, bool):
            return Error(code="bad_message", message="admit: request is a request id, admit "
                         "true or false")
        req = await self.get(room, request_id)
        if req is None or req.state != "waiting" or time.time() - req.seen >= STALE_S:
            return Error(code="no_such_request", message="that person is no longer waiting")
        if admit:
            person = Participant(secrets.token_urlsafe(9), req.name, req.speak, req.captions,
                                 req.hear_translation, "guest", time.time())
            try:
                await self.store.seat(room, person)
            except RoomError as exc:
                return Error(code=exc.code, message=f"cannot admit: {exc.message}")
            req.state, req.participant_id = "admitted", person.id
            await self._save(room, req)
            await self.store.publish(room, Joined(participant=person.public()))
        else:
            req.state = "declined"
            await self._save(room, req)
        await self.publish(room)
        return None

    async def _save(self, room: str, req: Request) -> None:
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(room), req.id, req.to_json())
            pipe.expire(self._key(room), max(self.ttl_s, self.store.idle_s))
            await pipe.execute()
