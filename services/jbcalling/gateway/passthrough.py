"""Forwarding encoded media through aiortc without re-encoding: the one place that hooks aiortc.

aiortc 1.16 has no supported API for an SFU. It does two things this module relies on
(checked by tests/integration/test_gateway_forwarding.py: no encoder starts for forwarded video):

- the receiver hands every reassembled encoded frame to ``get_decoder(codec).decode(frame)`` in a
  worker thread, looked up in ``aiortc.rtcrtpreceiver``'s namespace: :func:`install` replaces it
  so that video frames come out as ``av.Packet`` (no decoding) and Opus frames come out as
  ``av.Packet`` too, while a copy is decoded once for the speech tap;
- the sender only packetizes (``Encoder.pack``) when its track's ``recv()`` returns an
  ``av.Packet``: no encoder is ever created for forwarded media.

Keyframes: a subscriber's PLI only sets a flag on its sender that the pack path ignores, so
:func:`relay_keyframe_requests` forwards it to the source as a PLI of its own.

``install()`` is process-wide: call it only in the gateway process.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
from collections.abc import Callable
from typing import Any

import av
from aiortc import rtcrtpreceiver
from aiortc.codecs import get_decoder as aiortc_get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

log = logging.getLogger("jbcalling.gateway.passthrough")
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)
FORWARDED_VIDEO = {"video/VP8", "video/H264"}

# Decoded audio of one receiver goes to its tap callback (called in the decoder thread).
TapCallback = Callable[[av.AudioFrame], None]

_state: dict[str, Any] = {"installed": False}
_tap_lock = threading.Lock()
_taps: dict[Any, TapCallback] = {}  # receiver -> callback
counters = {"video_decoders": 0, "video_encoders": 0, "audio_decoders": 0, "forwarded_frames": 0}


class PassthroughVideoDecoder:
    """Returns each encoded video frame as a packet: forwarded, never decoded."""

    def decode(self, encoded_frame: JitterFrame) -> list[av.Packet]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = VIDEO_TIME_BASE
        counters["forwarded_frames"] += 1
        return [packet]


class TeeOpusDecoder:
    """Returns each Opus frame as a packet (forwarded as-is) and decodes a copy for the tap."""

    def __init__(self) -> None:
        self.real = aiortc_get_decoder(RTCRtpCodecParameters(mimeType="audio/opus",
                                                             clockRate=48000, channels=2))
        self.tap: TapCallback | None = None
        counters["audio_decoders"] += 1

    def decode(self, encoded_frame: JitterFrame) -> list[av.Packet]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = AUDIO_TIME_BASE
        tap = self.tap or _tap_for_this_thread()
        self.tap = tap
        if tap is not None:
            try:
                for frame in self.real.decode(encoded_frame):
                    tap(frame)  # type: ignore[arg-type]  # Opus decodes to AudioFrames
            except av.FFmpegError as exc:  # a bad frame costs the tap one frame, not the call
                log.warning("tap decode failed: %s", exc)
        return [packet]


def _tap_for_this_thread() -> TapCallback | None:
    # Each receiver runs its decoder in a thread of its own (aiortc 1.16, private attribute).
    me = threading.current_thread()
    with _tap_lock:
        for receiver, callback in _taps.items():
            if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is me:
                return callback
    return None


def _get_decoder(codec: RTCRtpCodecParameters) -> Any:
    if codec.mimeType in FORWARDED_VIDEO:
        return PassthroughVideoDecoder()
    if codec.mimeType == "audio/opus":
        return TeeOpusDecoder()
    counters["video_decoders" if codec.mimeType.startswith("video") else "audio_decoders"] += 1
    return aiortc_get_decoder(codec)


def install() -> None:
    """Make every receiver in this process forward instead of decode (idempotent)."""
    if _state["installed"]:
        return
    if not hasattr(rtcrtpreceiver, "get_decoder") or not hasattr(rtcrtpreceiver, "decoder_worker"):
        raise RuntimeError("aiortc changed: rtcrtpreceiver.get_decoder is gone; the gateway "
                           "cannot forward without decoding (see gateway/passthrough.py)")
    rtcrtpreceiver.get_decoder = _get_decoder
    _state["installed"] = True


def bind_tap(receiver: Any, callback: TapCallback) -> None:
    """Send the decoded audio of ``receiver`` to ``callback`` (in its decoder thread)."""
    with _tap_lock:
        _taps[receiver] = callback


def unbind_tap(receiver: Any) -> None:
    with _tap_lock:
        _taps.pop(receiver, None)


class RelayTrack(MediaStreamTrack):
    """What one subscriber receives from one slot: packets of whichever source fills the slot."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(maxsize=120)

    def push(self, packet: av.Packet) -> None:
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:  # a slow subscriber drops frames rather than delay everyone
            pass

    async def recv(self) -> av.Packet:
        packet = await self.queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        return packet


async def pump(source: MediaStreamTrack, sinks: Callable[[], list[RelayTrack]],
               on_end: Callable[[], None]) -> None:
    """Copy every packet of ``source`` (a receiver's track) to the current ``sinks``."""
    try:
        while True:
            packet = await source.recv()
            for sink in sinks():
                sink.push(packet)  # type: ignore[arg-type]  # pass-through decoders give packets
    except MediaStreamError:
        pass
    finally:
        on_end()


def relay_keyframe_requests(sender: Any, request: Callable[[], None]) -> None:
    """Forward a subscriber's PLI/FIR to the source instead of the ignored force-keyframe flag."""
    sender._send_keyframe = request  # aiortc 1.16: RTCRtpSender._handle_rtcp_packet calls this


async def request_keyframe(receiver: Any) -> None:
    """Ask the sender of ``receiver``'s stream for a keyframe (RTCP PLI)."""
    sources = receiver.getSynchronizationSources()
    for src in sources:
        await receiver._send_rtcp_pli(src.source)  # private in aiortc 1.16
