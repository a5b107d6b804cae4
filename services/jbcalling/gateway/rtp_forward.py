"""Forwarding RTP packets between aiortc peer connections: the one place that hooks aiortc.

aiortc 1.16 has no API for an SFU. The gateway keeps aiortc for ICE, DTLS, SRTP, RTCP and the
speech track, and forwards media at the RTP level through these private parts of it (checked by
:func:`check` when the gateway starts, and by tests/unit/test_rtp_forward.py):

- each publisher's ``RTCRtpReceiver._handle_rtp_packet`` is wrapped per instance
  (:func:`forward_from`): every packet, already SRTP-decrypted, goes at once to the subscribers'
  legs (:class:`Leg`), then to aiortc's own handler, which keeps what an SFU owes the publisher
  (receiver reports, NACKs for lost packets, REMB paced by :class:`RembPacing`). For video
  that handler's jitter buffer (``__jitter_buffer``) is replaced by one that never completes a
  frame: no frame, no decoder. Audio still goes through it, and each complete frame is decoded
  once per speaker, on the event loop, for the speech tap (gateway/tap_decoding.py replaces
  the receiver's ``__decoder_queue``; its decoder thread only waits to be ended);
- each subscriber slot's ``RTCRtpSender`` runs on an :class:`IdleTrack` (its RTP loop never
  sends) while its RTCP loop keeps sending sender reports from the counters a leg updates
  (``__packet_count``, ``__octet_count``, ``__rtp_timestamp``, ``__ntp_timestamp``). The leg's
  own ``_retransmit`` answers NACKs from its packet history (RTX when negotiated) and its
  ``_send_keyframe`` (a subscriber's PLI/FIR) calls back the SFU, which relays it to the source.
  REMB from subscribers only reaches the sender, which has no encoder to apply it to: never
  forwarded to publishers.

A packet leaves as it arrives, unless its subscriber already got a burst of them: then it waits
its turn in the subscriber's :class:`~jbcalling.gateway.pacing.Pacer` (a few milliseconds).
Each leg writes its packet and sends it in a plain call (gateway/rtp_wire.py: struct-packed
header, the DTLS transport's ``_tx_srtp``, the nominated ICE pair's socket), not through
aiortc's chain of coroutines per datagram.

``install()`` is process-wide: call it only in the gateway process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aioice import ice
from aiortc import rtcdtlstransport, rtcicetransport, rtcrtpreceiver, rtcrtpsender
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RtpPacket, unwrap_rtx

from jbcalling.gateway import forward_stats as stats
from jbcalling.gateway import rtp_wire, tap_decoding
from jbcalling.gateway.forward_stats import Rewriter
from jbcalling.gateway.pacing import Pacer

HISTORY = 1024  # packets per leg kept for NACKs: about 3 s of 720p video
# One retransmission of a packet per this many seconds: a receiver that cannot use them (aiortc
# drops RTX when several video m-lines share a transport) repeats its whole list of missing
# packets at each new loss, and answering every repeat multiplied the datagrams sent.
RESEND_INTERVAL = 0.1
# Retransmissions per leg: at most RESEND_SHARE of the packets it forwards, in bursts of at most
# RESEND_BURST (a whole lost 720p frame). Receivers that lag behind a loaded machine asked for
# more retransmissions than there was video (docs/runbook.md, "Gateway vs Janus"): resending
# them all only made the lag worse. Beyond it a NACK is dropped (nack_over_budget); a receiver
# still missing a frame asks for a keyframe (PLI), which the SFU relays with its rate limit.
RESEND_SHARE = 0.125  # one in eight: exact in binary, so the budget never drifts
RESEND_BURST = 30
NTP_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
SILENT_LEVEL = 127  # ssrc-audio-level (RFC 6464): -127 dBov, digital silence

# private names of aiortc 1.16 this module reads or writes, by the code that must use them
NEEDED = {
    (rtcrtpreceiver.RTCRtpReceiver, "__init__"): ["_RTCRtpReceiver__jitter_buffer",
                                                  "_RTCRtpReceiver__codecs",
                                                  "_RTCRtpReceiver__rtx_ssrc",
                                                  "_RTCRtpReceiver__decoder_thread",
                                                  "_RTCRtpReceiver__decoder_queue",
                                                  "_RTCRtpReceiver__remote_bitrate_estimator"],
    # gateway/tap_decoding.InlineDecoding: frames put in the queue, None to end the thread
    (rtcrtpreceiver.RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"): [
        "_RTCRtpReceiver__decoder_queue"],
    (rtcrtpreceiver.RTCRtpReceiver, "_send_rtcp_pli"): ["_send_rtcp"],
    (rtcrtpreceiver.RTCRtpReceiver, "_handle_rtp_packet"): [
        "_RTCRtpReceiver__jitter_buffer", "_RTCRtpReceiver__nack_generator",
        "_RTCRtpReceiver__remote_bitrate_estimator", "_RTCRtpReceiver__decoder_queue"],
    (rtcrtpsender.RTCRtpSender, "_run_rtcp"): ["_RTCRtpSender__packet_count",
                                               "_RTCRtpSender__octet_count",
                                               "_RTCRtpSender__rtp_timestamp",
                                               "_RTCRtpSender__ntp_timestamp"],
    (rtcrtpsender.RTCRtpSender, "_handle_rtcp_packet"): ["_retransmit", "_send_keyframe"],
    (rtcrtpsender.RTCRtpSender, "_run_rtp"): ["_next_encoded_frame"],
    (rtcdtlstransport.RTCDtlsTransport, "_send_rtp"): ["_tx_srtp", "_state",
                                                       "_RTCDtlsTransport__tx_bytes",
                                                       "_RTCDtlsTransport__tx_packets"],
    # gateway/rtp_wire.send: the nominated pair's socket, as aiortc and aioice send on it
    (rtcicetransport.RTCIceTransport, "__init__"): ["_connection"],
    (ice.Connection, "sendto"): ["_nominated", "protocol", "remote_addr", "send_data"],
    (ice.StunProtocol, "send_data"): ["transport", "sendto"],
}

_installed = {"done": False}


def check() -> None:
    """Fail loudly, naming what changed, if aiortc lacks what this module relies on."""
    missing = []
    for (cls, method), names in NEEDED.items():
        code = getattr(getattr(cls, method, None), "__code__", None)
        have = set(code.co_names) if code is not None else set()
        missing += [f"{cls.__name__}.{method} uses {n}" for n in names if n not in have]
    for module, name in ((rtcrtpreceiver, "get_decoder"), (rtcrtpsender, "get_encoder")):
        if not hasattr(module, name):
            missing.append(f"{module.__name__}.{name}")
    if missing:
        raise RuntimeError("aiortc changed: the gateway's RTP forwarding needs "
                           + "; ".join(missing) + " (see services/jbcalling/gateway/"
                           "rtp_forward.py; pin aiortc to 1.16 or port the hook)")


def install() -> None:
    """Check aiortc and make audio receivers decode for the speech tap only (idempotent)."""
    if _installed["done"]:
        return
    check()
    rtcrtpreceiver.get_decoder = tap_decoding.get_decoder
    real_get_encoder = rtcrtpsender.get_encoder

    def counting_get_encoder(codec: Any) -> Any:
        """An encoder counts once it encodes (the speech track); forwarding never makes one."""
        encoder = real_get_encoder(codec)
        kind = "video" if codec.mimeType.startswith("video") else "audio"
        real_encode, started = encoder.encode, [False]

        def encode(frame: Any, force_keyframe: bool = False) -> Any:
            if not started[0]:
                started[0] = True
                stats.encoders_started[kind] += 1
            return real_encode(frame, force_keyframe)

        encoder.encode = encode  # type: ignore[method-assign]
        return encoder

    rtcrtpsender.get_encoder = counting_get_encoder
    _installed["done"] = True


class IdleTrack(MediaStreamTrack):
    """What a subscriber slot's sender reads: nothing, until it stops (the legs send instead)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped = asyncio.Event()

    async def recv(self) -> Any:
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


class _NoFrames:
    """A jitter buffer that never completes a frame: forwarded video is never depacketized."""

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        return False, None


class RembPacing:
    """aiortc's receive-side bandwidth estimator for one publisher, whose estimates reach the
    publisher (REMB) at most once per ``INTERVAL_MS``, or per ``DROP_INTERVAL_MS`` when the
    estimate fell. aiortc sends one whenever its estimator updates, which while its overuse
    detector fires is every packet: in a profile of 4 participants (docs/runbook.md, "Gateway vs
    Janus") a fifth of aiortc's receive handler went to sending REMB packets."""

    INTERVAL_MS = 1000
    DROP_INTERVAL_MS = 200

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.sent_ms: int | None = None
        self.sent_bitrate = 0

    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        remb = self.estimator.add(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                                  payload_size=payload_size, ssrc=ssrc)
        if remb is None:
            return None
        if self.sent_ms is not None:
            interval = self.DROP_INTERVAL_MS if remb[0] < self.sent_bitrate else self.INTERVAL_MS
            if arrival_time_ms - self.sent_ms < interval:
                return None
        self.sent_ms, self.sent_bitrate = arrival_time_ms, remb[0]
        return remb


class Leg:
    """One subscriber's send slot of one kind: rewrites and sends the packets of its source.

    :meth:`forward` is a plain function: the packet is written (gateway/rtp_wire.py), protected
    and handed to the socket before it returns, or queued in its subscriber's pacer after a
    burst (gateway/pacing.py); nothing per leg waits on the event loop."""

    def __init__(self, sender: Any, kind: str, pacer: Pacer | None = None) -> None:
        self.sender, self.kind = sender, kind
        self.pacer = pacer if pacer is not None else Pacer(0, 0)  # its subscriber's: BUNDLE
        self.transport = sender.transport  # BUNDLE may replace it: taken again when it starts
        self.ssrc, self.rtx_ssrc = sender._ssrc, sender._rtx_ssrc
        self.payload_type: int | None = None  # known once aiortc starts the sender
        self.rtx_payload_type: int | None = None
        self.rtx_seq = 0
        self.mid: str | None = None
        self.extensions: rtp_wire.Extensions | None = None
        self.rewriter = Rewriter(90000 if kind == "video" else 48000)
        self.history: list[bytes | None] = [None] * HISTORY  # packets as sent, unprotected
        self.resent_at = [0.0] * HISTORY
        # retransmissions this leg may still send: RESEND_SHARE more per packet forwarded,
        # at most RESEND_BURST (a token bucket counted in packets, not in time)
        self.resend_budget = float(RESEND_BURST)
        self.counts = stats.LegCounts()
        self.on_ready: Callable[[], None] = lambda: None
        self.on_keyframe_request: Callable[[], None] = lambda: None
        real_send = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            await real_send(parameters)
            self._configure(parameters)

        sender.send = send
        sender._retransmit = self._retransmit
        sender._send_keyframe = lambda: self.on_keyframe_request()

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        self.transport = self.sender.transport
        self.extensions = rtp_wire.Extensions(parameters)
        self.mid = parameters.muxId
        codec = parameters.codecs[0]
        self.rtx_payload_type = next((c.payloadType for c in parameters.codecs if is_rtx(c)
                                      and c.parameters.get("apt") == codec.payloadType), None)
        self.payload_type = codec.payloadType
        self.on_ready()

    def forward(self, packet: RtpPacket, now: float, ntp: int, abs_send_time: bytes) -> None:
        """Send ``packet`` (a source's, decrypted) to this leg's subscriber, rewritten for it.
        ``now``: time.monotonic(); ``ntp``: the wall clock as NTP (sender reports);
        ``abs_send_time``: its 3 bytes for the abs-send-time extension."""
        payload_type, ext = self.payload_type, self.extensions
        if payload_type is None or ext is None:
            self.counts.drop(self.kind, "not_connected")
            return
        seq, timestamp = self.rewriter.map(packet.ssrc, packet.sequence_number,
                                           packet.timestamp, now)
        payload = packet.payload
        data = rtp_wire.packet(payload_type, packet.marker, seq, timestamp, self.ssrc,
                               ext.block(abs_send_time, packet.extensions.audio_level),
                               ext.profile, payload)
        if not self.pacer.send(self.transport, data, self.counts, self.kind, now):
            return
        self.history[seq % HISTORY] = data
        budget = self.resend_budget + RESEND_SHARE
        self.resend_budget = budget if budget < RESEND_BURST else RESEND_BURST
        sender = self.sender  # what its RTCP loop puts in sender reports (aiortc 1.16)
        sender._RTCRtpSender__packet_count += 1
        sender._RTCRtpSender__octet_count += len(payload)
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__ntp_timestamp = ntp
        self.counts.sent(self.kind, len(payload), packet.marker)

    async def _retransmit(self, sequence_number: int) -> None:
        """A subscriber's NACK (aiortc's sender calls this for each lost sequence number)."""
        index = sequence_number % HISTORY
        data = self.history[index]
        if data is None or int.from_bytes(data[2:4], "big") != sequence_number:
            self.counts.drop(self.kind, "nack_too_old")
            return
        now = time.monotonic()
        if now - self.resent_at[index] < RESEND_INTERVAL:
            self.counts.drop(self.kind, "nack_repeated")
            return
        if self.resend_budget < 1:
            self.counts.drop(self.kind, "nack_over_budget")
            return
        self.resent_at[index] = now
        if self.rtx_payload_type is not None:
            data = rtp_wire.rtx(data, self.rtx_payload_type, self.rtx_seq, self.rtx_ssrc)
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        if self.pacer.send(self.transport, data, self.counts, self.kind, now):
            self.resend_budget -= 1
            self.counts.retransmitted(self.kind)


def forward_from(receiver: Any, kind: str, sinks: Callable[[], Sequence[Leg]]) -> None:
    """Send every RTP packet ``receiver`` gets to the legs ``sinks()`` names at that moment."""
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
    if kind == "video":
        receiver._RTCRtpReceiver__jitter_buffer = _NoFrames()
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator
        if estimator is not None:
            receiver._RTCRtpReceiver__remote_bitrate_estimator = RembPacing(estimator)
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is None or not receiver._enabled:
            return await original(packet, arrival_time_ms)
        media = packet
        if is_rtx(codec):  # a retransmission the gateway asked for: forward the original
            apt, ssrc = codec.parameters.get("apt"), rtx_ssrcs.get(packet.ssrc)
            if len(packet.payload) < 2 or apt not in codecs or ssrc is None:
                return await original(packet, arrival_time_ms)  # padding (bandwidth probes)
            media = unwrap_rtx(packet, payload_type=apt, ssrc=ssrc)
        stats.received(kind, len(media.payload))
        if media.payload:
            legs = sinks()
            if legs:
                # once per source packet: the clocks, and abs-send-time (6.18 fixed point)
                now, ntp = time.monotonic(), int((time.time() + NTP_OFFSET) * (1 << 32))
                abs_send_time = ((ntp >> 14) & 0x00FFFFFF).to_bytes(3, "big")
                for leg in legs:
                    leg.forward(media, now, ntp, abs_send_time)
            if kind == "audio" and _silent(packet):
                packet.payload = packet.payload[:1]  # the tap gets zeros, not a decode
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle


async def request_keyframe(receiver: Any) -> None:
    """Ask the sender of ``receiver``'s stream for a keyframe (RTCP PLI)."""
    for source in receiver.getSynchronizationSources():
        stats.keyframes["sent"] += 1
        await receiver._send_rtcp_pli(source.source)


def _silent(packet: RtpPacket) -> bool:
    level = packet.extensions.audio_level
    return len(packet.payload) <= 2 or (level is not None and level[1] >= SILENT_LEVEL)
