"""One stt stream of a speaker (a *leg*: a speaker's captions go over one after the other, at
hand-overs and reconnects): what was sent on it, what stt said of it, and when it hands over
(gateway/pipeline.py's docstring, "stt's session limits")."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

HANDOVER_FROM = 0.9  # of stt's max_session_s: hand over at the next pause between utterances,
HANDOVER_LAST_S = 2.0  # and at the latest this long before stt would cut the stream
BYTES_PER_S = 32000  # 16 kHz s16le


class Busy(Exception):
    """Every stt instance refused the stream for lack of capacity."""


@dataclass
class Leg:
    """One stt stream of a speaker: its segments are ``<epoch>:<n>``, its times count from the
    wall time of its first sample."""

    epoch: int
    error: str = ""  # the code of stt's error message, if it sent one
    max_bytes: int = 0  # stt's max_session_s in bytes (0: no limit announced)
    sent: int = 0
    started_wall_ms: int = 0
    talking: bool = False  # a partial came and its final not yet
    closed: str = ""  # the reason stt gave when it closed the stream at a limit
    switch: bool = False  # the speaker changed the language they speak: hand over at once
    # a stable partial's text -> its translation, asked before the final came
    early: dict[str, asyncio.Future[tuple[str, str]]] = field(default_factory=dict)

    def hand_over(self) -> bool:
        if self.switch:
            return True
        if not self.max_bytes:
            return False
        if self.sent >= self.max_bytes - min(HANDOVER_LAST_S * BYTES_PER_S, self.max_bytes / 20):
            return True
        return self.sent >= self.max_bytes * HANDOVER_FROM and not self.talking


def now_ms() -> int:
    return int(time.time() * 1000)
