"""Rate limits of signaling.

Two kinds, both here:

- ``RateLimiter``: fixed one-minute windows counted in Redis, shared by every replica: per client
  address at the HTTP endpoints (create, join, token renewal) and per room for what a room's
  sockets send to the gateway or fan out to everyone.
- ``SocketLimits``: token buckets of one WebSocket, one per message type, kept in the process that
  holds the socket (a socket lives in one replica). A refused message costs a "strike"; strikes
  refill slowly, and a socket out of strikes (a sustained excess) is closed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass
class TokenBucket:
    """``burst`` tokens at most, ``per_s`` tokens back per second; a message takes one."""

    burst: float
    per_s: float
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SocketLimits:
    """The buckets of one socket. ``rates``: message type -> (burst, per second); a type without
    an entry shares the bucket of ``"other"`` (unknown types, bad messages)."""

    def __init__(self, rates: Mapping[str, tuple[float, float]], strikes: int,
                 strikes_per_s: float = 1.0) -> None:
        self.buckets = {kind: TokenBucket(burst, per_s) for kind, (burst, per_s) in rates.items()}
        self.strikes = TokenBucket(strikes, strikes_per_s)

    def allow(self, kind: str) -> bool:
        bucket = self.buckets.get(kind) or self.buckets["other"]
        return bucket.take()

    def strike(self) -> bool:
        """Count one refused message; False when the socket has run out of strikes."""
        return self.strikes.take()
