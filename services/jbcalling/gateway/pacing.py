"""Pacing one subscriber's datagrams: a few back to back, the rest spread over milliseconds.

The gateway forwards what its event loop read in one go: six publishers' sockets wake together,
each gives up to 32 datagrams, and every subscriber then gets several sources' packets back to
back. Measured at the participants' sockets (docs/runbook.md, "Gateway vs Janus"), its largest
bursts were about twice Janus's at the same mean rate, and receivers' sockets overflowed.

A :class:`Pacer` per subscriber (all its legs share one transport, BUNDLE) lets ``burst``
packets go at once, then releases the rest at ``factor`` times the subscriber's own recent rate
(never below ``MIN_RATE``), from a timer on the event loop. libwebrtc's sender paces the same
way, at 2.5 times its target bitrate. Audio is small and late audio is heard: it never waits
behind video, but it spends tokens like the rest. Order within the queue is kept, so a
stream's packets leave in the order they came.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from jbcalling.gateway import rtp_wire
from jbcalling.gateway.forward_stats import LegCounts, pacing

BURST = 8  # packets a subscriber gets back to back before the rest wait (settings: pacing_burst)
FACTOR = 2.5  # x the subscriber's measured rate: how fast a queue drains (pacing_factor)
WINDOW = 0.5  # seconds over which a subscriber's packet rate is measured
MIN_RATE = 1000.0  # packets per second, the slowest a queue ever drains
MAX_QUEUE = 512  # packets waiting per subscriber: beyond it, the newest are dropped
TICK = 0.001  # the shortest wait between releases (the event loop's timers count in ms)

Send = Callable[[Any, bytes], bool]


class Pacer:
    """One subscriber's send queue. :meth:`send` sends now or queues; a timer drains the queue
    (reading ``clock``). ``burst`` 0: no pacing, every packet leaves at once."""

    def __init__(self, burst: int, factor: float, send: Send = rtp_wire.send,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.factor, self._send, self._clock = burst, factor, send, clock
        now = clock()
        self.tokens = float(burst)
        self.rate = MIN_RATE  # packets per second released once the tokens are spent
        self.refilled = self.window_start = now
        self.window_packets = 0
        self.queue: deque[tuple[Any, bytes, LegCounts, str, float]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.max_wait = 0.0  # the longest a packet waited, seconds (for tests and probes)

    def send(self, transport: Any, data: bytes, counts: LegCounts, kind: str,
             now: float) -> bool:
        """Send ``data`` now or after the packets before it; False (nothing sent nor queued,
        the drop counted in ``counts``) when the transport is not connected or the queue is
        full. ``now``: the caller's time.monotonic(), read once per source packet."""
        if not self.burst:
            return self._sent(transport, data, counts, kind)
        self.window_packets += 1
        if now - self.window_start >= WINDOW:
            self.rate = max(MIN_RATE, self.factor * self.window_packets / (now - self.window_start))
            self.window_start, self.window_packets = now, 0
        if kind == "video" and self.queue:  # behind what waits (its timer is set)
            if len(self.queue) >= MAX_QUEUE:
                counts.drop(kind, "pacer_full")
                return False
        else:
            self._refill(now)
            if self.tokens >= 1 or kind == "audio":
                self.tokens = max(self.tokens - 1, -self.burst)
                return self._sent(transport, data, counts, kind)
        self.queue.append((transport, data, counts, kind, now))
        pacing["queued"] += 1
        self._schedule()
        return True

    def close(self) -> None:
        """Drop what waits (the subscriber left) and stop the timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()

    def _refill(self, now: float) -> None:
        tokens = self.tokens + (now - self.refilled) * self.rate
        self.tokens = tokens if tokens < self.burst else float(self.burst)
        self.refilled = now

    def _schedule(self) -> None:
        if self.timer is None:
            wait = max(TICK, (1 - self.tokens) / self.rate)
            self.timer = asyncio.get_running_loop().call_later(wait, self._drain)

    def _drain(self) -> None:
        self.timer = None
        now = self._clock()
        self._refill(now)
        queue = self.queue
        while queue and self.tokens >= 1:
            transport, data, counts, kind, queued_at = queue.popleft()
            self.tokens -= 1
            if now - queued_at > self.max_wait:
                self.max_wait = now - queued_at
            self._sent(transport, data, counts, kind)
        if queue:
            self._schedule()

    def _sent(self, transport: Any, data: bytes, counts: LegCounts, kind: str) -> bool:
        if self._send(transport, data):
            return True
        counts.drop(kind, "not_connected")
        return False
