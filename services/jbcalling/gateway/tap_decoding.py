"""Decoding each speaker's audio once, for the speech tap only (gateway/rtp_forward.py installs
:func:`get_decoder` as aiortc's ``rtcrtpreceiver.get_decoder`` in the gateway process).

Forwarding never decodes: video receivers get a decoder that is never fed (their jitter buffer
never completes a frame), and an audio receiver's decoder thread hands its frames to the tap
bound to that receiver, never to the receiver's track (no one reads it). A silent packet (cut
to its TOC byte by the forwarding hook) becomes zeros of its duration, undecoded.
"""

from __future__ import annotations

import fractions
import logging
import threading
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
_tap_lock = threading.Lock()
_taps: dict[Any, Callable[[av.AudioFrame], None]] = {}  # receiver -> the speaker's tap


def bind_tap(receiver: Any, callback: Callable[[av.AudioFrame], None]) -> None:
    """Send the decoded audio of ``receiver`` to ``callback`` (in its decoder thread)."""
    with _tap_lock:
        _taps[receiver] = callback


def unbind_tap(receiver: Any) -> None:
    with _tap_lock:
        _taps.pop(receiver, None)


class TapOpusDecoder:
    """Decodes a speaker's Opus for the tap only (forwarding never needs it); a DTX-sized or
    silent packet (cut to its TOC byte by the hook) becomes zeros of its duration, undecoded."""

    def __init__(self) -> None:
        self.real = aiortc_get_decoder(RTCRtpCodecParameters(mimeType="audio/opus",
                                                             clockRate=48000, channels=2))
        self.tap: Callable[[av.AudioFrame], None] | None = None
        stats.tap_frames["decoders"] += 1

    def decode(self, encoded_frame: JitterFrame) -> list[av.AudioFrame]:
        tap = self.tap = self.tap or _tap_for_this_thread()
        if tap is None:
            return []
        data = encoded_frame.data
        if len(data) <= 2:
            stats.tap_frames["silent"] += 1
            samples = opus_samples(data)
            frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
            frame.planes[0].update(bytes(samples * 4))
            frame.sample_rate, frame.pts = 48000, encoded_frame.timestamp
            frame.time_base = AUDIO_TIME_BASE
            tap(frame)
            return []
        stats.tap_frames["decoded"] += 1
        try:
            for decoded in self.real.decode(encoded_frame):
                tap(decoded)  # type: ignore[arg-type]  # Opus decodes to AudioFrames
        except av.FFmpegError as exc:  # a bad frame costs the tap one frame, not the call
            log.warning("tap decode failed: %s", exc)
        return []  # nothing reaches the receiver's track: no one reads it


def _tap_for_this_thread() -> Callable[[av.AudioFrame], None] | None:
    # Each receiver runs its decoder in a thread of its own (aiortc 1.16, private attribute).
    me = threading.current_thread()
    with _tap_lock:
        for receiver, callback in _taps.items():
            if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is me:
                return callback
    return None


class _NoVideoDecoder:
    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        stats.tap_frames["video_frames_decoded"] += 1  # never: video skips the jitter buffer
        return []


def get_decoder(codec: RTCRtpCodecParameters) -> Any:
    if codec.mimeType == "audio/opus":
        return TapOpusDecoder()
    if codec.mimeType.startswith("video"):
        return _NoVideoDecoder()
    return aiortc_get_decoder(codec)
