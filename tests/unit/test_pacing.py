"""gateway/pacing.py: a subscriber's packets leave a burst at a time, in order, none lost.

The event loop and its timers are real; the pacer's clock is a counter the test moves, so what
a timer releases depends only on the time the test says has passed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jbcalling.gateway import forward_stats
from jbcalling.gateway.forward_stats import LegCounts
from jbcalling.gateway.pacing import MAX_QUEUE, MIN_RATE, Pacer

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """What reached the socket; ``connected`` False refuses, as rtp_wire.send does."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.connected = True

    def __call__(self, transport: Any, data: bytes) -> bool:
        if self.connected:
            self.sent.append(data)
        return self.connected


def _timers_run() -> Any:
    return asyncio.sleep(0.02)  # real time, for the loop to run the pacer's timer


def test_a_burst_leaves_a_few_at_once_then_at_the_pacing_rate_in_order() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(8, 2.5, send=wire, clock=clock)
        packets = [bytes([i]) for i in range(20)]
        queued = forward_stats.pacing["queued"]
        assert all(pacer.send(None, p, counts, "video", clock.now) for p in packets)
        assert wire.sent == packets[:8]
        assert forward_stats.pacing["queued"] - queued == 12
        await _timers_run()
        assert wire.sent == packets[:8]  # no time passed on the pacer's clock: nothing more
        clock.now += 4 / MIN_RATE  # four packets' worth at the slowest rate
        await _timers_run()
        assert wire.sent == packets[:12]
        clock.now += 1.0  # long enough for the rest
        await _timers_run()
        assert wire.sent == packets and not pacer.queue
        assert pacer.max_wait == pytest.approx(1.0 + 4 / MIN_RATE)  # the last waited it all
        assert counts.dropped == 0

    asyncio.run(scenario())


def test_audio_never_waits_behind_video_but_spends_tokens() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(2, 2.5, send=wire, clock=clock)
        for p in (b"v1", b"v2", b"v3"):
            pacer.send(None, p, counts, "video", clock.now)
        assert pacer.send(None, b"a1", counts, "audio", clock.now)
        assert wire.sent == [b"v1", b"v2", b"a1"]
        clock.now += 1 / MIN_RATE  # one token: the audio packet took it
        await _timers_run()
        assert wire.sent == [b"v1", b"v2", b"a1"]
        clock.now += 1 / MIN_RATE
        await _timers_run()
        assert wire.sent == [b"v1", b"v2", b"a1", b"v3"]
        pacer.close()

    asyncio.run(scenario())


def test_the_rate_follows_the_subscribers_own_rate() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(1000, 2.5, send=wire, clock=clock)
        for i in range(2000):  # 4000 packets a second over half a second
            clock.now = 100.0 + i * 0.5 / 2000
            pacer.send(None, b"x", counts, "video", clock.now)
        assert pacer.rate == MIN_RATE  # not measured before half a second
        clock.now = 100.5
        pacer.send(None, b"x", counts, "video", clock.now)
        assert abs(pacer.rate - 2.5 * 4000) < 50
        pacer.close()

    asyncio.run(scenario())


def test_without_pacing_everything_leaves_at_once() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(0, 2.5, send=wire, clock=clock)
        for i in range(100):
            assert pacer.send(None, bytes([i]), counts, "video", clock.now)
        assert len(wire.sent) == 100 and pacer.timer is None

    asyncio.run(scenario())


def test_a_full_queue_refuses_and_counts_and_a_lost_transport_counts() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(MAX_QUEUE, 2.5, send=wire, clock=clock)  # tokens for a full queue
        before = dict(forward_stats.dropped)
        for _ in range(2 * MAX_QUEUE):  # a burst's worth sent, then a full queue
            assert pacer.send(None, b"x", counts, "video", clock.now)
        assert len(wire.sent) == MAX_QUEUE and len(pacer.queue) == MAX_QUEUE
        assert not pacer.send(None, b"late", counts, "video", clock.now)
        assert forward_stats.dropped[("video", "pacer_full")] \
            == before.get(("video", "pacer_full"), 0) + 1
        wire.connected = False  # the subscriber's transport went away: what waited is dropped
        clock.now += 10.0
        await _timers_run()
        assert not pacer.queue and counts.dropped == 1 + MAX_QUEUE
        assert forward_stats.dropped[("video", "not_connected")] \
            == before.get(("video", "not_connected"), 0) + MAX_QUEUE
        assert not pacer.send(None, b"x", counts, "audio", clock.now)  # refused at once, counted
        assert counts.dropped == 2 + MAX_QUEUE

    asyncio.run(scenario())


def test_closing_stops_the_timer_and_drops_what_waits() -> None:
    async def scenario() -> None:
        clock, wire, counts = Clock(), Wire(), LegCounts()
        pacer = Pacer(1, 2.5, send=wire, clock=clock)
        for _ in range(5):
            pacer.send(None, b"x", counts, "video", clock.now)
        assert pacer.timer is not None
        pacer.close()
        clock.now += 10.0
        await _timers_run()
        assert wire.sent == [b"x"] and pacer.timer is None and not pacer.queue

    asyncio.run(scenario())
