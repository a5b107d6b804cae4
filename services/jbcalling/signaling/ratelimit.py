"""Per-client fixed-window rate limits, counted in Redis (shared by every replica)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis


class RateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def allow(self, action: str, client: str, per_minute: int) -> tuple[bool, int]:
        """(allowed, seconds until the window resets)."""
        window = int(time.time() // 60)
        key = f"jb:rate:{action}:{client}:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = await pipe.execute()
        return count <= per_minute, 60 - int(time.time() % 60)
