"""An outbound audio track that plays queued PCM (translated speech) in real time, silence between.

aiortc pulls frames as fast as ``recv`` returns them, so the track paces itself: one 20 ms frame
per 20 ms of wall clock.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)


class SpeechTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pcm = bytearray()  # s16le mono at 48 kHz
        self._pts = 0
        self._start: float | None = None
        self.samples_played = 0  # of speech, not silence (a metric and a test hook)

    def play(self, pcm48k_s16le: bytes) -> None:
        """Queue speech; it starts at the next frame boundary."""
        self._pcm.extend(pcm48k_s16le)

    @property
    def queued_ms(self) -> int:
        """How long the speech queued and not yet played lasts."""
        return len(self._pcm) * 1000 // (2 * RATE)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        need = FRAME_SAMPLES * 2
        chunk = bytes(self._pcm[:need])
        del self._pcm[:need]
        if chunk:
            self.samples_played += len(chunk) // 2
        samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if chunk:
            samples[: len(chunk) // 2] = np.frombuffer(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame
