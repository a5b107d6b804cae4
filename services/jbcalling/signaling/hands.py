"""Raised hands and reactions.

The hands are a queue in Redis (``jb:room:<id>:hands``, a sorted set scored by the time each
was raised), so every replica publishes the same order; each change publishes the whole queue
(``hands``). A participant raises and lowers their own hand; a host may lower anyone's.
Reactions are not stored: one of a fixed list (``protocol.REACTIONS``), published and shown
briefly on the sender's tile.
"""

from __future__ import annotations

import time
from typing import Any

from jbcalling.common.protocol import REACTIONS, Error, Hands, Reaction, room_key
from jbcalling.signaling.rooms import RoomStore


async def queue(store: RoomStore, room: str) -> list[str]:
    raw = await store.redis.zrange(room_key(room, "hands"), 0, -1)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]


async def lower(store: RoomStore, room: str, pid: str, by: str) -> None:
    """Take ``pid``'s hand out of the queue (removed from the room, or lowered)."""
    if await store.redis.zrem(room_key(room, "hands"), pid):
        await store.publish(room, Hands(queue=await queue(store, room), by=by))


async def hand(store: RoomStore, room: str, pid: str, role: str,
               msg: dict[str, Any]) -> Error | None:
    raised, target = msg.get("raised", True), msg.get("target") or pid
    if not isinstance(raised, bool) or not isinstance(target, str):
        return Error(code="bad_message", message="hand: raised is true or false, target a "
                     "participant id")
    if target != pid:
        if raised or role != "host":
            return Error(code="forbidden", message="only the host may lower someone else's "
                         "hand, and nobody raises it for them")
        if await store.get(room, target) is None:
            return Error(code="no_such_participant", message="that participant is not in the room")
    key = room_key(room, "hands")
    if raised:
        # NX: raising again keeps one's place in the queue
        changed = await store.redis.zadd(key, {pid: time.time()}, nx=True)
        await store.redis.expire(key, store.idle_s)
    else:
        changed = await store.redis.zrem(key, target)
    if changed:
        await store.publish(room, Hands(queue=await queue(store, room), by=pid))
    return None


async def react(store: RoomStore, room: str, pid: str, msg: dict[str, Any]) -> Error | None:
    emoji = msg.get("emoji")
    if emoji not in REACTIONS:
        return Error(code="bad_message", message=f"react: emoji is one of {' '.join(REACTIONS)}")
    await store.publish(room, Reaction(participant=pid, emoji=str(emoji)))
    return None
