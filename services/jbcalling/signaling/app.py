"""The signaling FastAPI application: rooms API, participant WebSockets, health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket
from prometheus_client import CollectorRegistry
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from jbcalling.common import health
from jbcalling.common.discovery import Discovery
from jbcalling.signaling import api, metrics, webclient, ws
from jbcalling.signaling.chat import ChatRelay
from jbcalling.signaling.gateway_watch import GatewayWatch
from jbcalling.signaling.media import MediaRelay
from jbcalling.signaling.ratelimit import RateLimiter
from jbcalling.signaling.rooms import RoomStore
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.signaling.waiting import WaitingRoom

log = logging.getLogger("jbcalling.signaling")


def create_app(settings: SignalingSettings) -> FastAPI:
    registry = CollectorRegistry()
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout_s,
                                    socket_connect_timeout=settings.redis_timeout_s)
    # The pub/sub connection blocks while waiting for events: no socket timeout on it.
    events_redis = aioredis.Redis.from_url(settings.redis_url,
                                           socket_connect_timeout=settings.redis_timeout_s)
    store = RoomStore(redis, settings.room_idle_s, settings.max_participants)
    hub = ws.Hub(events_redis, store)
    media = MediaRelay(settings, store)
    watch = GatewayWatch(media, lambda: list(hub.sockets), settings.gateway_watch_s,
                         settings.gateway_fail_after)
    meeting = ws.Meeting(
        ChatRelay(store, Discovery(settings.consul_http_addr, {"mt": settings.mt_url}),
                  settings.chat_translate_timeout_s),
        WaitingRoom(store, settings.waiting_ttl_s))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        await watch.start()
        log.info("signaling started", extra={"version": settings.version})
        yield
        await watch.stop()
        await hub.stop()
        await meeting.chat.close()
        await redis.aclose()
        await events_redis.aclose()

    app = FastAPI(title="jbcalling signaling", version=settings.version, lifespan=lifespan)
    app.state.settings = settings
    # Behind the ingress every request comes from a proxy: the client's address (rate limits) and
    # scheme (join links) are taken from X-Forwarded-For/-Proto, but only when the peer is one
    # of the trusted proxies; from anyone else those headers are ignored.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.state.redis = redis
    limiter = RateLimiter(redis)
    app.include_router(api.router(settings, store, limiter, meeting.lobby))

    @app.websocket("/ws/rooms/{room_id}")
    async def room_socket(websocket: WebSocket, room_id: str) -> None:
        await ws.serve(websocket, room_id, settings, store, hub, media, limiter, meeting)

    async def probe() -> health.Readiness:
        try:
            await redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            return health.Readiness(False, {"redis": f"unreachable: {exc}"})
        rooms = len(hub.sockets)
        sockets = sum(len(s) for s in hub.sockets.values())
        return health.Readiness(True, {"redis": "ok"}, {"rooms": rooms, "sockets": sockets})

    health.install(app, service="signaling", version=settings.version, probe=probe,
                   registry=registry)
    metrics.install(app, metrics.SignalingMetrics(registry, lambda: hub.sockets))
    webclient.install(app)
    return app
