"""Who may turn a microphone off and on: the participant's own switch and a host mute.

A participant's record says who muted them (``Participant.muted_by``): themselves, a host, or
nobody. The rules, checked here on the server whatever the page does:

- the participant turns their own microphone off and on with ``settings`` ``muted``;
- a host mutes anyone with ``mute``; while that mute lasts the participant cannot lift it (their
  ``settings`` unmute is refused with ``muted_by_host``; muting themselves again keeps it a host
  mute), and only a host lifts it (``mute`` with ``muted: false``);
- a host cannot turn on a microphone its owner turned off (``not_muted_by_host``).

Every change reaches the room's gateway, which then neither forwards nor recognises that audio
(gateway/sfu.py). A record is changed under a Redis WATCH: a participant's ``settings`` racing a
host's ``mute`` (on any replica) cannot write back the state from before the mute.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.exceptions import WatchError

from jbcalling.common.protocol import Error, Participant, SettingsChange, room_key
from jbcalling.signaling.media import MediaRelay
from jbcalling.signaling.rooms import RoomStore

MUTED_BY_HOST = Error(code="muted_by_host", message="a host muted your microphone: only a host "
                      "can turn it on again")
NOT_MUTED_BY_HOST = Error(code="not_muted_by_host", message="that microphone was turned off by "
                          "its owner (or is on): only they can turn it on")


async def _update(store: RoomStore, room: str, pid: str,
                  change: Callable[[Participant], Error | None]) -> tuple[Participant | None,
                                                                           Error | None]:
    """Apply ``change`` to ``pid``'s stored record atomically; (the record, change's error)."""
    key = room_key(room, "people")
    async with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.hget(key, pid)
                if not raw:
                    return None, None
                person = Participant.parse(raw)
                error = change(person)
                pipe.multi()
                pipe.hset(key, pid, person.to_json())
                await pipe.execute()
                return person, error
            except WatchError:
                continue  # someone else wrote the room's people meanwhile: read again


async def host_muted(store: RoomStore, room: str, pid: str) -> bool:
    person = await store.get(room, pid)
    return person is not None and person.host_muted


async def apply_settings(store: RoomStore, media: MediaRelay, room: str, pid: str,
                         change: SettingsChange) -> tuple[Participant | None, Error | None]:
    """A participant's own ``settings``; the error when their unmute was refused (the other
    settings of the message still apply)."""
    before: dict[str, bool] = {}

    def apply(me: Participant) -> Error | None:
        before["muted"] = me.muted
        for key, value in change.model_dump(exclude_none=True, exclude={"muted"}).items():
            setattr(me, key, value)
        if change.muted is None or me.host_muted:
            return MUTED_BY_HOST if change.muted is False else None
        me.muted, me.muted_by = change.muted, (me.id if change.muted else "")
        return None

    me, error = await _update(store, room, pid, apply)
    if me is not None and me.muted != before["muted"]:
        await media.mute(room, pid, me.muted)
    return me, error


async def host_mute(store: RoomStore, media: MediaRelay, room: str, host: str, target: str,
                    muted: bool) -> tuple[Participant | None, Error | None]:
    """A host's ``mute`` of ``target`` (``muted`` false: lift a host mute)."""
    def apply(person: Participant) -> Error | None:
        if muted:
            if not person.host_muted:  # a mute of their own becomes a host mute
                person.muted, person.muted_by = True, host
            return None
        if not person.host_muted:
            return NOT_MUTED_BY_HOST
        person.muted, person.muted_by = False, ""
        return None

    person, error = await _update(store, room, target, apply)
    if person is not None and error is None:
        await media.mute(room, target, person.muted)
    return person, error
