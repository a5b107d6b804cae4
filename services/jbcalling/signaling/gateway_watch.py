"""Watching the media gateways of this replica's rooms, so that clients rejoin after a restart.

Every ``gateway_watch_s`` each signaling replica asks each gateway that one of its rooms uses
for its boot id (``GET /v1/instance``, one call per gateway):

- same boot id as the one the room negotiated with: the gateway is alive; the room's sticky
  gateway keys are renewed (so that a long call keeps its gateway);
- another boot id: the gateway restarted and lost every peer connection -> ``gateway_restarted``;
- no answer ``gateway_fail_after`` times in a row -> ``gateway_unreachable``.

Either way ``MediaRelay.gone`` forgets the room's gateway (once across replicas: a Redis
compare-and-delete) and publishes ``media_reconnect`` to the room; each client then negotiates
again with ``media_offer`` and lands on the restarted gateway or on another healthy one
(docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import httpx
import redis.asyncio as aioredis

from jbcalling.signaling.media import MediaRelay

log = logging.getLogger("jbcalling.signaling.gateway_watch")


class GatewayWatch:
    def __init__(self, media: MediaRelay, rooms: Callable[[], list[str]], every_s: float,
                 fail_after: int) -> None:
        self.media = media
        self.rooms = rooms
        self.every_s = every_s
        self.fail_after = fail_after
        self.failures: dict[str, int] = defaultdict(int)  # gateway URL -> checks missed in a row
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.check()
            except (aioredis.RedisError, OSError) as exc:  # Redis away: try again next round
                log.warning("gateway watch skipped a round", extra={"error": str(exc)})

    async def check(self) -> None:
        """One round over this replica's rooms."""
        sticky = {room: await self.media.sticky(room) for room in self.rooms()}
        live: dict[str, str | None] = {}
        for url in {url for url, boot in sticky.values() if url and boot}:
            try:
                live[url] = await self.media.instance(url)
                self.failures.pop(url, None)
            except (httpx.HTTPError, ValueError, KeyError):
                self.failures[url] += 1
                live[url] = None
        for room, (url, boot) in sticky.items():
            if url not in live:
                continue
            now = live[url]
            if now == boot:
                await self.media.renew(room)
            elif now is not None:
                await self.media.gone(room, url, boot, "gateway_restarted")
            elif self.failures[url] >= self.fail_after:
                await self.media.gone(room, url, boot, "gateway_unreachable")
        for url in [u for u in self.failures if u not in live]:
            del self.failures[url]  # no room of ours uses it any more
