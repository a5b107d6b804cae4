"""An outbound audio track that plays queued PCM (translated speech) in real time, silence between.

aiortc pulls frames as fast as ``recv`` returns them, so the track paces itself: one 20 ms frame
per 20 ms of wall clock.

The track hands aiortc Opus packets, which its sender only packetizes: silence is one packet
encoded once per process and sent again and again; speech is encoded here, frame by frame, while
it plays and for a few frames after (the encoder's tail). Every participant has this track, and
most of the time it is silent: through aiortc's encoder each silent frame cost an Opus encode on
a worker thread and an audio-level measure in Python, about 1 ms of CPU per 20 ms per participant.

While nothing plays, the track sends one silent packet per ``DTX_INTERVAL`` instead of one per
20 ms, as Opus DTX does (RFC 7587, section 3.1.3): the RTP timestamp jumps over the pause, and
receivers (browsers' NetEq, aiortc) play silence in between. Every participant has this track
and it is silent most of the time: 50 packets a second each were the gateway's extra datagrams
against Janus (docs/runbook.md, "Gateway vs Janus"). Speech queued by :meth:`play` ends the wait
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)
TAIL_FRAMES = 5  # encoded silence after speech, so that the encoder's last samples come out
DTX_INTERVAL = 0.4  # seconds between two silent packets while nothing plays


def _encoder() -> av.AudioCodecContext:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = RATE, "mono", "s16"
    ctx.bit_rate, ctx.time_base = 32000, TIME_BASE
    ctx.options = {"application": "voip"}
    return ctx


def _frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = RATE, pts, TIME_BASE
    return frame


def _silence() -> bytes:
    """A steady-state Opus packet of 20 ms of silence."""
    ctx = _encoder()
    packets: list[av.Packet] = []
    for n in range(5):
        packets += ctx.encode(_frame(np.zeros(FRAME_SAMPLES, dtype=np.int16), n * FRAME_SAMPLES))
    return bytes(packets[-1])


SILENCE = _silence()


class SpeechTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pcm = bytearray()  # s16le mono at 48 kHz
        self._pts = 0
        self._start: float | None = None
        self._encoder: av.AudioCodecContext | None = None
        self._tail = 0  # frames still to go through the encoder after speech
        self.samples_played = 0  # of speech, not silence (a metric and a test hook)
        self._silent = False  # the last packet sent was silence (not speech, not its tail)
        self._speech = asyncio.Event()  # set by play(): ends a silent wait

    def play(self, pcm48k_s16le: bytes) -> None:
        """Queue speech; it starts at the next frame boundary."""
        self._pcm.extend(pcm48k_s16le)
        self._speech.set()

    @property
    def queued_ms(self) -> int:
        """How long the speech queued and not yet played lasts."""
        return len(self._pcm) * 1000 // (2 * RATE)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        if self._silent and not self._pcm:
            # DTX: the next silent packet after DTX_INTERVAL, or speech as soon as it comes
            self._speech.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._speech.wait(), DTX_INTERVAL)
            now = int((time.monotonic() - self._start) * RATE)
            self._pts = max(self._pts, now - now % FRAME_SAMPLES)
        due = self._start + self._pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        need = FRAME_SAMPLES * 2
        chunk = bytes(self._pcm[:need])
        del self._pcm[:need]
        data = SILENCE
        if chunk:
            self.samples_played += len(chunk) // 2
            self._tail = TAIL_FRAMES
        elif self._tail:
            self._tail -= 1
        if chunk or self._tail:
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            samples[: len(chunk) // 2] = np.frombuffer(chunk, dtype=np.int16)
            if self._encoder is None:
                self._encoder = _encoder()
            encoded = self._encoder.encode(_frame(samples, self._pts))
            data = bytes(encoded[0]) if encoded else SILENCE
        elif self._encoder is not None:
            self._encoder = None  # the next speech starts from a fresh encoder
        self._silent = not (chunk or self._tail)
        packet = av.Packet(data)
        packet.pts, packet.time_base = self._pts, TIME_BASE
        self._pts += FRAME_SAMPLES
        return packet
