"""Relaying a participant's media negotiation to the gateway that owns the room.

The gateway for a room is chosen once (a healthy instance from Consul, or the configured URL)
and kept in Redis (``jb:room:<id>:gateway``; set only if absent, so that replicas racing for a
new gateway agree), so every signaling replica sends the room's peers to the same gateway. The
gateway process that answered the first offer is remembered too (``jb:room:<id>:gateway_boot``,
its boot id): ``gateway_watch.py`` compares it with the live one and, when the gateway is gone
or restarted, forgets both keys and tells the room's clients to rejoin (``media_reconnect``).

A participant's mute reaches the gateway twice over: with every offer (``?muted=``, read from
their stored record, so a reconnect or a restarted gateway keeps it) and at once when it
changes (``PUT .../mute``). Which tiles a participant's page hides (``PUT .../visibility``,
signaling/visibility.py) is sent only when it changes: the page sends it again after every
negotiation.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from jbcalling.common.discovery import Discovery, NoInstance, tls
from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import MediaReconnect, read_error, room_key
from jbcalling.signaling.rooms import RoomStore
from jbcalling.signaling.settings import SignalingSettings

log = logging.getLogger("jbcalling.signaling.media")


class MediaError(ServiceError):
    """A negotiation that failed; it reaches the client as an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(502, code, message)


class MediaRelay:
    def __init__(self, settings: SignalingSettings, store: RoomStore) -> None:
        self.store = store
        self.discovery = Discovery(settings.consul_http_addr, {"gateway": settings.gateway_url})
        token = settings.gateway_token.get_secret_value()
        self.headers = {"X-JB-Gateway-Token": token} if token else {}

    async def _gateway(self, room: str, fresh: bool = False) -> str:
        key = room_key(room, "gateway")
        if not fresh:
            current = await self.store.redis.get(key)
            if current:
                return _text(current)
        try:
            url = await self.discovery.pick("gateway")
        except NoInstance as exc:
            raise MediaError("no_gateway", "no media gateway is available: the call cannot "
                                           "carry audio or video right now") from exc
        if fresh:  # the stored one did not answer
            await self.store.redis.set(key, url, ex=self.store.idle_s)
            await self.store.redis.delete(room_key(room, "gateway_boot"))
            return url
        await self.store.redis.set(key, url, ex=self.store.idle_s, nx=True)
        return _text(await self.store.redis.get(key) or url)

    async def sticky(self, room: str) -> tuple[str, str]:
        """The room's gateway URL and the boot id of the process that negotiated ("" if none)."""
        url, boot = await self.store.redis.mget(room_key(room, "gateway"),
                                                room_key(room, "gateway_boot"))
        return (_text(url) if url else "", _text(boot) if boot else "")

    async def renew(self, room: str) -> None:
        for part in ("gateway", "gateway_boot"):
            await self.store.redis.expire(room_key(room, part), self.store.idle_s)

    async def forget(self, room: str, url: str, boot: str) -> bool:
        """Drop the room's gateway if it is still ``url``/``boot``; True for the one caller (of
        all replicas) that dropped it, who then tells the room."""
        dropped = await self.store.redis.eval(
            _FORGET, 2, room_key(room, "gateway"), room_key(room, "gateway_boot"), url, boot)
        return bool(dropped)

    async def gone(self, room: str, url: str, boot: str, reason: str) -> bool:
        """The room's gateway went away: forget it and, once across replicas, tell the room's
        clients to negotiate again (docs/protocol.md, ``media_reconnect``)."""
        if not (url and boot) or not await self.forget(room, url, boot):
            return False
        log.warning("media gateway gone; clients rejoin", extra={"reason": reason,
                                                                  "personal": {"room": room}})
        await self.store.publish(room, reconnect_event(reason))
        return True

    async def instance(self, url: str) -> str:
        """The boot id of the gateway process at ``url``; raises httpx.HTTPError if it is away."""
        async with httpx.AsyncClient(timeout=1.5, headers=self.headers, verify=tls()) as http:
            resp = await http.get(url + "/v1/instance")
            resp.raise_for_status()
            return str(resp.json()["boot"])

    async def _post(self, room: str, path: str, body: dict[str, Any] | None,
                    params: dict[str, str] | None = None) -> httpx.Response:
        for attempt in (0, 1):
            url = await self._gateway(room, fresh=attempt == 1)
            try:
                async with httpx.AsyncClient(timeout=15, headers=self.headers, verify=tls()) as http:
                    return await http.post(url + path, json=body, params=params)
            except httpx.HTTPError as exc:
                log.warning("gateway did not answer; choosing another", extra={"error": str(exc)})
                self.discovery.forget("gateway")
                if attempt == 0:
                    await self.gone(room, *await self.sticky(room), reason="gateway_unreachable")
        raise MediaError("gateway_unreachable", "the media gateway does not answer; retry")

    async def offer(self, room: str, pid: str) -> str:
        person = await self.store.get(room, pid)
        muted = "true" if person is not None and person.muted else "false"
        resp = await self._post(room, f"/v1/rooms/{room}/peers/{pid}/offer", None,
                                {"muted": muted})
        if resp.status_code != 200:
            raise _gateway_error(resp)
        body = resp.json()
        if body.get("boot"):  # the first offer of this gateway process in the room
            await self.store.redis.set(room_key(room, "gateway_boot"), str(body["boot"]),
                                       ex=self.store.idle_s, nx=True)
        return str(body["sdp"])

    async def answer(self, room: str, pid: str, sdp: str) -> None:
        resp = await self._post(room, f"/v1/rooms/{room}/peers/{pid}/answer", {"sdp": sdp})
        if resp.status_code != 204:
            raise _gateway_error(resp)

    async def mute(self, room: str, pid: str, muted: bool) -> None:
        """Tell the room's gateway, if it has one, that ``pid``'s audio must go nowhere (or may
        again). A gateway that does not answer gets the state with the participant's next offer
        (a gateway that went away makes the room's clients negotiate again)."""
        await self._put(room, f"/v1/rooms/{room}/peers/{pid}/mute", {"muted": muted}, "mute")

    async def visibility(self, room: str, pid: str, hidden: list[str]) -> None:
        """Tell the room's gateway which participants' tiles ``pid``'s page does not show (their
        video is paused for ``pid``). Not replayed with the next offer: a new peer connection
        starts with every video flowing and the page sends its list again after
        ``media_ready``."""
        await self._put(room, f"/v1/rooms/{room}/peers/{pid}/visibility", {"hidden": hidden},
                        "visibility")

    async def _put(self, room: str, path: str, body: dict[str, Any], what: str) -> None:
        """A state change for the room's gateway, if it has one; a gateway that does not take
        it is logged (the state comes again with the next negotiation)."""
        url = await self.store.redis.get(room_key(room, "gateway"))
        if not url:
            return
        try:
            async with httpx.AsyncClient(timeout=5, headers=self.headers, verify=tls()) as http:
                resp = await http.put(_text(url) + path, json=body)
        except httpx.HTTPError as exc:
            log.warning("gateway did not take a %s change: %s", what, exc)
            return
        if resp.status_code != 204:
            log.warning("gateway refused a %s change (HTTP %s): %s", what, resp.status_code,
                        resp.text[:200])

    async def leave(self, room: str, pid: str) -> None:
        key = await self.store.redis.get(room_key(room, "gateway"))
        if not key:
            return
        url = key.decode() if isinstance(key, bytes) else str(key)
        try:
            async with httpx.AsyncClient(timeout=5, headers=self.headers, verify=tls()) as http:
                await http.delete(f"{url}/v1/rooms/{room}/peers/{pid}")
        except httpx.HTTPError:
            pass  # the gateway drops a dead peer connection by itself


_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
"""


def reconnect_event(reason: str) -> MediaReconnect:
    return MediaReconnect(reason=reason)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _gateway_error(resp: httpx.Response) -> MediaError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    return MediaError(*read_error(body, "gateway_error", f"gateway answered {resp.status_code}"))
