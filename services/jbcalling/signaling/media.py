"""Relaying a participant's media negotiation to the gateway that owns the room.

The gateway for a room is chosen once (a healthy instance from Consul, or the configured URL)
and kept in Redis (``jb:room:<id>:gateway``), so every signaling replica sends the room's
peers to the same gateway. If that gateway stops answering, the next offer picks another and
the clients of the room reconnect there.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from jbcalling.common.discovery import Discovery, NoInstance
from jbcalling.signaling.rooms import RoomStore, room_key
from jbcalling.signaling.settings import SignalingSettings

log = logging.getLogger("jbcalling.signaling.media")


class MediaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


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
                return current.decode() if isinstance(current, bytes) else str(current)
        try:
            url = await self.discovery.pick("gateway")
        except NoInstance as exc:
            raise MediaError("no_gateway", "no media gateway is available: the call cannot "
                                           "carry audio or video right now") from exc
        await self.store.redis.set(key, url, ex=self.store.idle_s)
        return url

    async def _post(self, room: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        for attempt in (0, 1):
            url = await self._gateway(room, fresh=attempt == 1)
            try:
                async with httpx.AsyncClient(timeout=15, headers=self.headers) as http:
                    return await http.post(url + path, json=body)
            except httpx.HTTPError as exc:
                log.warning("gateway did not answer; choosing another", extra={"error": str(exc)})
                self.discovery.forget("gateway")
        raise MediaError("gateway_unreachable", "the media gateway does not answer; retry")

    async def offer(self, room: str, pid: str) -> str:
        resp = await self._post(room, f"/v1/rooms/{room}/peers/{pid}/offer", None)
        if resp.status_code != 200:
            detail = _detail(resp)
            raise MediaError(detail.get("code", "gateway_error"),
                             detail.get("message", f"gateway answered {resp.status_code}"))
        return str(resp.json()["sdp"])

    async def answer(self, room: str, pid: str, sdp: str) -> None:
        resp = await self._post(room, f"/v1/rooms/{room}/peers/{pid}/answer", {"sdp": sdp})
        if resp.status_code != 204:
            detail = _detail(resp)
            raise MediaError(detail.get("code", "gateway_error"),
                             detail.get("message", f"gateway answered {resp.status_code}"))

    async def leave(self, room: str, pid: str) -> None:
        key = await self.store.redis.get(room_key(room, "gateway"))
        if not key:
            return
        url = key.decode() if isinstance(key, bytes) else str(key)
        try:
            async with httpx.AsyncClient(timeout=5, headers=self.headers) as http:
                await http.delete(f"{url}/v1/rooms/{room}/peers/{pid}")
        except httpx.HTTPError:
            pass  # the gateway drops a dead peer connection by itself


def _detail(resp: httpx.Response) -> dict[str, str]:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {"message": str(detail)}
