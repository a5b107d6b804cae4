"""Decoding each speaker's audio once, for the speech tap only, on the event loop.

Forwarding never decodes: video receivers get a decoder that is never fed (their jitter buffer
never completes a frame, gateway/rtp_forward.py). An audio receiver's complete frames, which
aiortc 1.16 hands to a decoder thread through a queue (``__decoder_queue``), are decoded at the
moment they are queued instead (:func:`decode_on_loop`), and go to the tap bound to that
receiver, never to the receiver's track (no one reads it). Handing each 20 ms frame to a thread
cost more than decoding it: in a profile of 6 participants the queue's condition variable
alone took 5 % of the event loop (docs/runbook.md, "Gateway vs Janus"), and each decoded frame
came back through ``call_soon_threadsafe``. A silent packet (cut to its TOC byte by the
forwarding hook) becomes zeros of its duration, undecoded; an Opus decode of 20 ms takes tens
of microseconds.
"""

from __future__ import annotations

import fractions
import logging
import queue
from collections.abc import Callable
from typing import Any

import av
from aiortc.codecs import get_decoder as aiortc_get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from jbcalling.gateway import forward_stats as stats
from jbcalling.gateway.forward_stats import opus_samples

log = logging.getLogger("jbcalling.gateway.tap_decoding")
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
Tap = Callable[[av.AudioFrame], None]


class TapOpusDecoder:
    """Decodes a speaker's Opus for the tap only (forwarding never needs it); a DTX-sized or
    silent packet (cut to its TOC byte by the hook) becomes zeros of its duration, undecoded."""

    def __init__(self, tap: Tap | None) -> None:
        self.real = aiortc_get_decoder(RTCRtpCodecParameters(mimeType="audio/opus",
                                                             clockRate=48000, channels=2))
        self.tap = tap
        stats.tap_frames["decoders"] += 1

    def decode(self, encoded_frame: JitterFrame) -> None:
        tap = self.tap
        if tap is None:
            return
        data = encoded_frame.data
        if len(data) <= 2:
            stats.tap_frames["silent"] += 1
            samples = opus_samples(data)
            frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
            frame.planes[0].update(bytes(samples * 4))
            frame.sample_rate, frame.pts = 48000, encoded_frame.timestamp
            frame.time_base = AUDIO_TIME_BASE
            tap(frame)
            return
        stats.tap_frames["decoded"] += 1
        try:
            for decoded in self.real.decode(encoded_frame):
                tap(decoded)  # type: ignore[arg-type]  # Opus decodes to AudioFrames
        except av.FFmpegError as exc:  # a bad frame costs the tap one frame, not the call
            log.warning("tap decode failed: %s", exc)


class InlineDecoding:
    """Stands in for an audio receiver's decoder queue: a frame put in it is decoded at once,
    on the event loop. aiortc's decoder thread still waits on the receiver's own queue, which
    receives only the ``None`` that ends it when the receiver stops (whether the thread was
    started with that queue or with this object)."""

    def __init__(self, thread_queue: queue.Queue[Any], tap: Tap | None) -> None:
        self.thread_queue = thread_queue
        self.decoder = TapOpusDecoder(tap)

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self.thread_queue.put(None)
            return
        codec, frame = item
        if codec.mimeType.lower() == "audio/opus":
            self.decoder.decode(frame)

    def get(self) -> Any:
        return self.thread_queue.get()


def decode_on_loop(receiver: Any, tap: Tap) -> None:
    """Decode ``receiver``'s audio on the event loop and send it to ``tap``."""
    current = receiver._RTCRtpReceiver__decoder_queue
    if isinstance(current, InlineDecoding):
        current.decoder.tap = tap
        return
    receiver._RTCRtpReceiver__decoder_queue = InlineDecoding(current, tap)


def unbind_tap(receiver: Any) -> None:
    """No more audio of ``receiver`` reaches its tap (the participant left)."""
    current = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
    if isinstance(current, InlineDecoding):
        current.decoder.tap = None


class _NeverFed:
    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        stats.tap_frames["thread_frames_decoded"] += 1  # never: see the module docstring
        return []


def get_decoder(codec: RTCRtpCodecParameters) -> Any:
    """aiortc's decoder threads get decoders that are never fed: video skips the jitter buffer
    and audio is decoded on the loop."""
    return _NeverFed()
