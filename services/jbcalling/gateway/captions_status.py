"""What a room is told of one speaker's captions (``captions_status``), the reconnect backoff
while they are paused, and the count of the speaker's audio that was never recognized.

The data path and its degradations are described in gateway/pipeline.py; this is the part of a
speaker's stream (gateway/speaker_stream.py) that speaks to the room about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING

from jbcalling.common.protocol import CaptionsStatus

if TYPE_CHECKING:
    from jbcalling.gateway.pipeline import Pipeline

log = logging.getLogger("jbcalling.gateway.pipeline")
STATUS_REPEAT_S = 10.0
RETRY_FIRST_S = 0.25  # reconnect backoff: first wait,
RETRY_TALKING_S = 0.5  # longest wait while the speaker talks (a sentence must not wait for us),
RETRY_QUIET_S = 5.0  # longest wait while they are quiet
TALKING_RECENT_S = 5.0  # the speaker counts as talking this long after they last talked
STATUS_MESSAGES = {
    "unavailable": "captions paused: speech recognition is unavailable; they resume when it is "
                   "back",
    "busy": "captions paused: speech recognition is at capacity; they start when it has room",
    "backlog": "captions paused: speech recognition fell behind and some speech was not "
               "captioned; they resume at the speaker's next pause",
    "available": "captions are back",
}


class SpeakerStatus:
    """One speaker's captions status as the room knows it, and the backoff of their retries."""

    def __init__(self, pipeline: Pipeline, room: str, pid: str) -> None:
        self.p, self.room, self.pid = pipeline, room, pid
        self.down = False  # participants were told captions are paused
        self.state = ""  # why: unavailable, busy or backlog
        self.dropped_s = 0.0  # audio dropped since the last log line saying so
        self.dropped_logged = -STATUS_REPEAT_S
        self.delay = RETRY_FIRST_S  # reconnect backoff
        self.last_report = 0.0
        self.talked_at = -math.inf  # monotonic time they last talked (gateway/speech_gate.py)
        self.talk_started = asyncio.Event()  # they began talking after TALKING_RECENT_S quiet

    def dropped(self, reason: str, seconds: float) -> None:
        self.p.audio_dropped.labels(reason).inc(seconds)
        if reason == "quiet":  # not speech: counted, never logged (listeners are quiet all along)
            return
        self.dropped_s += seconds
        if time.monotonic() - self.dropped_logged >= STATUS_REPEAT_S:
            log.warning("speaker audio dropped", extra={
                "reason": reason, "seconds": round(self.dropped_s, 2), "room": self.room,
                "speaker": self.pid})
            self.dropped_s, self.dropped_logged = 0.0, time.monotonic()

    async def _status(self, state: str) -> None:
        """``state``: available, unavailable, busy, or backlog (said as busy)."""
        await self.p.publish(self.room, CaptionsStatus(
            state="busy" if state == "backlog" else state, speaker=self.pid,
            message=STATUS_MESSAGES[state]))

    async def _up(self) -> None:
        """stt said ``ready``: the stream works (a refusal comes after the connection opens)."""
        self.delay = RETRY_FIRST_S
        if self.down:
            self.down, self.state = False, ""
            log.info("speech recognition is back", extra={"room": self.room, "speaker": self.pid})
            await self._status("available")

    async def _behind(self) -> None:
        """The open stream fell behind (stt ``skipped``): the room is told, the stream goes on;
        ``resumed`` says ``available`` again (:meth:`_up`)."""
        if self.down:
            return
        log.warning("speech recognition fell behind for a speaker", extra={
            "room": self.room, "speaker": self.pid})
        self.p.captions_busy.inc()
        self.down, self.state, self.last_report = True, "backlog", time.monotonic()
        await self._status("backlog")

    async def _down(self, error: str, state: str = "unavailable") -> None:
        """``state``: unavailable, busy (no instance had room) or backlog (the stream fell
        behind); said to the room at once when it changes, and again every STATUS_REPEAT_S."""
        changed = not self.down or state != self.state
        if changed or time.monotonic() - self.last_report >= STATUS_REPEAT_S:
            if changed:
                log.warning("speech recognition unavailable for a speaker", extra={
                    "state": state, "error": error, "room": self.room, "speaker": self.pid})
                if state != "unavailable" and self.state in ("", "unavailable"):
                    self.p.captions_busy.inc()  # once per wait for capacity
            self.state = state
            await self._status(state)
            self.down, self.last_report = True, time.monotonic()
        talking = time.monotonic() - self.talked_at < TALKING_RECENT_S
        self.delay = min(self.delay, RETRY_TALKING_S if talking else RETRY_QUIET_S)
        self.talk_started.clear()
        # a long wait in silence ends as soon as the speaker starts talking
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.talk_started.wait(), self.delay)
        self.delay = min(self.delay * 2, RETRY_TALKING_S if talking else RETRY_QUIET_S)
