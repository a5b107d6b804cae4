"""The translation cache in Redis: one key per (model version, direction, normalized sentence).

The model version is a hash of the weights, so a new model never serves an old translation.
Redis trouble never fails a translation: the cache is skipped, counted and reported in /ready.
"""

from __future__ import annotations

import hashlib
import logging

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("jbcalling.mt.cache")


def key(version: str, pair: str, sentence: str) -> str:
    digest = hashlib.sha256(sentence.encode()).hexdigest()[:32]
    return f"jb:mt:{version}:{pair}:{digest}"


class Cache:
    def __init__(self, url: str, timeout_s: float, ttl_s: int, registry: CollectorRegistry) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=timeout_s,
                                             socket_connect_timeout=timeout_s) if url else None
        self.ttl_s = ttl_s
        self.hits = Counter("jb_mt_cache_hits_total", "Sentences served from the cache", registry=registry)
        self.misses = Counter("jb_mt_cache_misses_total", "Sentences not in the cache", registry=registry)
        self.errors = Counter("jb_mt_cache_errors_total", "Redis errors (cache skipped)", registry=registry)
        self.last_error = ""

    async def get(self, keys: list[str]) -> list[str | None]:
        if self.redis is None or not keys:
            return [None] * len(keys)
        try:
            values = await self.redis.mget(keys)
        except (aioredis.RedisError, OSError) as exc:
            self._failed(exc)
            return [None] * len(keys)
        found = [v.decode() if isinstance(v, bytes) else v for v in values]
        hits = sum(v is not None for v in found)
        self.hits.inc(hits)
        self.misses.inc(len(found) - hits)
        return found

    async def put(self, items: dict[str, str]) -> None:
        if self.redis is None or not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, v in items.items():
                    pipe.set(k, v, ex=self.ttl_s)
                await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors.inc()
        self.last_error = str(exc)
        log.warning("translation cache skipped: redis error", extra={"error": str(exc)})

    async def check(self) -> str:
        if self.redis is None:
            return "disabled"
        try:
            await self.redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            return f"unreachable (translations not cached): {exc}"
        return "ok"

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
