"""Admission while serving: the open streams in the order they were admitted; once a second the
capacity (capacity.py) follows what the workers observed, and when the instance lags (over
capacity in fact) the newest talking streams beyond what it keeps are shed (closed with ``busy``
at their next frame, stt/app.py) so that the older ones keep real-time captions; quiet streams
cost next to nothing and stay. The gateway opens streams only for people who talk and ends them
after a long quiet stretch (gateway/speaker_stream.py), but a speaker between sentences keeps
theirs, quiet, for up to that long: "talking" (speech in the last ``TALKED_S``) still chooses
whom to close. The gateway tells the shed speakers' rooms ``busy`` and retries
(gateway/pipeline.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from itertools import count

from prometheus_client import CollectorRegistry, Counter, Gauge

from jbcalling.stt.backend import Backend, Stream
from jbcalling.stt.capacity import Capacity

log = logging.getLogger("jbcalling.stt")
TICK_S = 1.0  # how often the capacity follows what the workers observed
TALKED_S = 10.0  # a stream with speech this recently talks (a speaker pauses between sentences)


@dataclass(eq=False)
class Session:
    """An open stream; ``seq``: the order of admission (the newest go first)."""

    seq: int
    handle: Stream
    shed: bool = False  # over the observed capacity: closed with busy at its next frame
    behind: bool = False  # a skipped notice went out, its resumed not yet
    voiced: int = 0  # the stream's speech samples at the last tick
    talked_at: float = -1e9  # monotonic time of the last tick that saw it talk


class Admission:
    def __init__(self, capacity: Capacity, backends: dict[str, Backend],
                 registry: CollectorRegistry) -> None:
        self.capacity, self.backends = capacity, backends
        self.sessions: dict[Stream, Session] = {}
        self.seq = count()
        self.shed = Counter("jb_stt_streams_shed", "Open streams closed with busy because the "
                            "observed capacity fell below the streams open (the newest first)",
                            registry=registry)
        Gauge("jb_stt_observed_real_time_factor", "Worker seconds per second of speech over the "
              "capacity window (0: too little speech to say)", registry=registry).set_function(
            lambda: capacity.observed_rtf or 0.0)
        Gauge("jb_stt_lag_seconds", "Audio received and not yet recognized, most behind stream",
              registry=registry).set_function(self.lag_s)
        for b in backends.values():
            b.served = capacity.served

    def lag_s(self) -> float:
        return max((b.lag_s() for b in self.backends.values()), default=0.0)

    def admit(self, handle: Stream) -> Session:
        session = self.sessions[handle] = Session(next(self.seq), handle)
        return session

    def leave(self, handle: Stream) -> None:
        self.sessions.pop(handle, None)

    def tick(self, now: float) -> int:
        """The capacity follows the observation; on a lag verdict the newest talking streams
        beyond what the instance keeps are marked to go. Returns how many were marked."""
        taking = [x for x in self.sessions.values() if not x.handle.closing and not x.shed]
        for x in taking:
            if x.handle.voiced != x.voiced:
                x.voiced, x.talked_at = x.handle.voiced, now
        talking = [x for x in taking if now - x.talked_at <= TALKED_S]
        lag = self.lag_s()
        limit = self.capacity.update(now, len(taking), lag, len(talking))
        keep = self.capacity.over
        if keep is None or len(talking) <= keep:
            return 0
        newest = sorted(talking, key=lambda x: x.seq)[keep:]
        for x in newest:
            x.shed = True
            self.shed.inc()
        log.warning("over the observed capacity; closing the newest streams", extra={
            "capacity_streams": limit, "shed": len(newest), "lag_s": round(lag, 2)})
        return len(newest)

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.tick(time.monotonic())
