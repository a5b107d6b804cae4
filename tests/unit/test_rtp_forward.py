"""The gateway's RTP forwarding hook against the installed aiortc (gateway/rtp_forward.py).

These fail on an aiortc upgrade that moves what the hook relies on: the private names, the
receiver's packet handler, the sender's NACK and PLI handling, its sender-report counters.
Real aiortc receiver and sender objects; only the DTLS transport is a stand-in that records the
datagrams it would encrypt and send.
"""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import pytest
from aioice import ice
from aioice.candidate import Candidate
from aiortc import rtcrtpsender
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    wrap_rtx,
)
from pylibsrtp import Policy, Session

from jbcalling.gateway import forward_stats, rtp_forward, rtp_wire

pytestmark = pytest.mark.unit
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
RTX = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=98,
                            parameters={"apt": 97})
MID = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")


class Transport:
    """Stands in for RTCDtlsTransport with real SRTP: its ``_tx_srtp`` protects, its nominated
    ICE pair is an aioice StunProtocol whose socket records the datagrams; ``sent`` decrypts
    them again, so that a test reads what a subscriber would."""

    _stats_id = "t"

    def __init__(self) -> None:
        key = bytes(range(30))
        self._state = State.CONNECTED
        self._tx_srtp = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        self._rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        self._RTCDtlsTransport__tx_bytes = self._RTCDtlsTransport__tx_packets = 0
        self.wire: list[tuple[bytes, tuple[str, int]]] = []
        self._plain: list[bytes] = []
        self._cleared = 0
        protocol = ice.StunProtocol(receiver=None)  # type: ignore[arg-type]
        protocol.transport = self  # type: ignore[assignment]  # its sendto below
        pair = ice.CandidatePair(protocol, Candidate("1", 1, "udp", 1, "127.0.0.1", 5004,
                                                     "host"))
        connection = SimpleNamespace(_nominated={1: pair})
        self.transport = SimpleNamespace(_connection=connection)

    @property
    def state(self) -> str:
        return str(self._state.name.lower())

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.wire.append((data, addr))

    @property
    def sent(self) -> list[bytes]:
        """The datagrams since the last :meth:`clear`, decrypted (each once: SRTP refuses a
        replay)."""
        while len(self._plain) < len(self.wire):
            self._plain.append(self._rx.unprotect(self.wire[len(self._plain)][0]))
        return self._plain[self._cleared:]

    def clear(self) -> None:
        self._cleared = len(self.sent)

    async def _send_rtp(self, data: bytes) -> None:  # RTCP of aiortc's own sender
        pass

    def _register_rtp_sender(self, *_: Any) -> None:
        pass

    def _unregister_rtp_sender(self, *_: Any) -> None:
        pass


def test_the_installed_aiortc_has_what_the_hook_needs() -> None:
    rtp_forward.check()  # raises, naming each missing piece, on an incompatible aiortc


def test_a_changed_aiortc_is_named_at_install(monkeypatch: pytest.MonkeyPatch) -> None:
    async def _run_rtcp(self: Any) -> None:  # a sender-report loop without the counters
        await asyncio.sleep(1)

    monkeypatch.setattr(rtcrtpsender.RTCRtpSender, "_run_rtcp", _run_rtcp)
    with pytest.raises(RuntimeError, match=re.escape("RTCRtpSender._run_rtcp uses "
                                                     "_RTCRtpSender__packet_count")):
        rtp_forward.check()


def _packet(seq: int, ts: int, ssrc: int = 1111, marker: int = 0) -> RtpPacket:
    return RtpPacket(payload_type=96, marker=marker, sequence_number=seq, timestamp=ts,
                     ssrc=ssrc, payload=bytes([0x10]) + b"x" * 99)


def test_packets_go_to_the_legs_rewritten_and_nacks_and_plis_are_answered() -> None:
    async def scenario() -> None:
        transport = Transport()
        sender = rtcrtpsender.RTCRtpSender(rtp_forward.IdleTrack("video"), transport)
        leg = rtp_forward.Leg(sender, "video")
        asked: list[str] = []
        leg.on_ready = lambda: asked.append("ready")
        leg.on_keyframe_request = lambda: asked.append("pli")
        await sender.send(RTCRtpSendParameters(codecs=[VP8, RTX], headerExtensions=[MID],
                                               muxId="5", rtcp=RTCRtcpParameters(cname="c")))
        assert asked == ["ready"] and leg.payload_type == 97 and leg.rtx_payload_type == 98

        # a publisher's receiver, hooked: packets reach the leg, no frame reaches a decoder
        receiver = RTCRtpReceiver("video", Transport())  # type: ignore[arg-type]
        receiver._RTCRtpReceiver__codecs[96] = VP8  # type: ignore[attr-defined]
        rtp_forward.forward_from(receiver, "video", lambda: [leg])
        before = dict(forward_stats.totals["video"])
        for i in range(3):
            await receiver._handle_rtp_packet(_packet(100 + i, 9000, marker=int(i == 2)), 0)
        ext = HeaderExtensionsMap()
        ext.configure(RTCRtpSendParameters(headerExtensions=[MID]))
        out = [RtpPacket.parse(d, ext) for d in transport.sent]
        assert [(p.ssrc, p.payload_type, p.extensions.mid) for p in out] == \
            [(sender._ssrc, 97, "5")] * 3
        assert [p.sequence_number for p in out] == [100, 101, 102]  # first source: as sent
        assert out[2].marker == 1 and all(p.payload == _packet(0, 0).payload for p in out)
        assert leg.counts.packets == 3 and leg.counts.frames == 1
        assert forward_stats.totals["video"]["received_packets"] == before.get(
            "received_packets", 0) + 3
        # what the sender's RTCP loop puts in its sender reports
        assert sender._RTCRtpSender__packet_count == 3  # type: ignore[attr-defined]
        assert sender._RTCRtpSender__octet_count == 300  # type: ignore[attr-defined]
        assert sender._RTCRtpSender__rtp_timestamp == 9000  # type: ignore[attr-defined]
        # aiortc's own receiver work goes on: it sees the loss it must NACK upstream
        await receiver._handle_rtp_packet(_packet(104, 12000), 0)
        nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        assert nacks.missing == {103} and len(transport.sent) == 4
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer,  # type: ignore[attr-defined]
                          rtp_forward._NoFrames)  # video is never reassembled nor decoded

        # a subscriber's NACK (through aiortc's own RTCP handling): resent over RTX
        transport.clear()
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1,
                                                         media_ssrc=sender._ssrc, lost=[101]))
        rtx = RtpPacket.parse(transport.sent[0], ext)
        assert (rtx.ssrc, rtx.payload_type) == (sender._rtx_ssrc, 98)
        assert rtx.payload[:2] == (101).to_bytes(2, "big") and leg.counts.resent == 1
        # the same NACK again at once: not answered twice within RESEND_INTERVAL
        await sender._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1,
                                                         media_ssrc=sender._ssrc, lost=[101]))
        assert len(transport.sent) == 1 and leg.counts.resent == 1 and leg.counts.dropped == 1
        # ... and a subscriber's PLI goes to the SFU (which relays it to the source)
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1,
                                                        media_ssrc=sender._ssrc))
        assert asked == ["ready", "pli"]

    asyncio.run(scenario())


ABS = RTCRtpHeaderExtensionParameters(
    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
LEVEL = RTCRtpHeaderExtensionParameters(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level")


@pytest.mark.parametrize("extensions, level", [
    ([MID, ABS], None),  # video as aiortc offers it
    ([MID, LEVEL], (True, 30)),  # audio, voice active
    ([MID, LEVEL], None),  # audio from a source without the level
    ([], None),  # no extensions at all
    ([RTCRtpHeaderExtensionParameters(id=15, uri=MID.uri), ABS], None),  # two-byte form
])
def test_the_packets_written_are_the_bytes_aiortc_writes(
        extensions: list[RTCRtpHeaderExtensionParameters], level: tuple[bool, int] | None) -> None:
    params = RTCRtpSendParameters(codecs=[VP8], headerExtensions=extensions, muxId="12")
    ours = rtp_wire.Extensions(params)
    theirs = HeaderExtensionsMap()
    theirs.configure(params)
    payload = bytes(range(200))
    for marker, seq, ts in ((0, 1, 2), (1, 65535, 4_294_967_295)):
        mine = rtp_wire.packet(97, marker, seq, ts, 0xDEADBEEF,
                               ours.block(b"\x01\x02\x03", level), ours.profile, payload)
        ref = RtpPacket(payload_type=97, marker=marker, sequence_number=seq, timestamp=ts,
                        ssrc=0xDEADBEEF, payload=payload)
        ref.extensions.mid = "12"
        if any(e.uri == ABS.uri for e in extensions):
            ref.extensions.abs_send_time = 0x010203
        ref.extensions.audio_level = level
        assert mine == ref.serialize(theirs)
        assert rtp_wire.rtx(mine, 98, 7, 0xCAFE) == \
            wrap_rtx(ref, payload_type=98, sequence_number=7, ssrc=0xCAFE).serialize(theirs)


async def _started_leg(transport: Transport) -> rtp_forward.Leg:
    sender = rtcrtpsender.RTCRtpSender(rtp_forward.IdleTrack("video"), transport)
    leg = rtp_forward.Leg(sender, "video")
    await sender.send(RTCRtpSendParameters(codecs=[VP8, RTX], headerExtensions=[MID, ABS],
                                           muxId="5", rtcp=RTCRtcpParameters(cname="c")))
    return leg


def test_retransmissions_stay_within_the_legs_budget() -> None:
    async def scenario() -> None:
        transport = Transport()
        leg = await _started_leg(transport)
        for i in range(100):
            leg.forward(_packet(1000 + i, 9000 + i), 1.0 + i / 1000, 0, b"\0\0\0")
        assert len(transport.sent) == 100 and transport.wire[0][1] == ("127.0.0.1", 5004)
        # the DTLS transport's own counters (its getStats) count the protected datagrams
        assert transport._RTCDtlsTransport__tx_packets == 100
        assert transport._RTCDtlsTransport__tx_bytes == sum(len(d) for d, _ in transport.wire)
        over = forward_stats.dropped[("video", "nack_over_budget")]
        for i in range(100):  # a receiver that asks for everything it got
            await leg._retransmit(1000 + i)
        assert leg.counts.resent == rtp_forward.RESEND_BURST == len(transport.sent) - 100
        assert forward_stats.dropped[("video", "nack_over_budget")] == over + 100 - 30
        for i in range(20):  # 20 more forwarded: 20 x RESEND_SHARE = 3 more retransmissions
            leg.forward(_packet(1100 + i, 12000), 2.0, 0, b"\0\0\0")
        for i in range(10):
            await leg._retransmit(1100 + i)
        assert leg.counts.resent == 30 + int(20 * rtp_forward.RESEND_SHARE)
        # a transport no longer connected: nothing written, the drop counted
        transport._state = State.CLOSED
        dropped, wire = leg.counts.dropped, len(transport.wire)
        leg.forward(_packet(1200, 13000), 3.0, 0, b"\0\0\0")
        assert len(transport.wire) == wire and leg.counts.dropped == dropped + 1

    asyncio.run(scenario())


def test_a_slot_that_changes_source_stays_continuous() -> None:
    r = forward_stats.Rewriter(90000)
    assert r.map(1, 65534, 4_294_967_000) == (65534, 4_294_967_000)
    assert r.map(1, 65535, 4_294_967_295) == (65535, 4_294_967_295)
    assert r.map(1, 0, 2704) == (0, 2704)  # both wrap as the source's do
    assert r.map(1, 65533, 1) == (65533, 1)  # a late packet keeps its place
    seq, ts = r.map(2, 40000, 123)  # a new source: right after the last packet sent
    assert seq == 1 and 2704 < ts < 2704 + 90000
    assert r.map(2, 40001, 3123) == (2, ts + 3000)


def test_a_paused_stream_resumes_without_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(forward_stats.time, "monotonic", lambda: now[0])
    r = forward_stats.Rewriter(90000)
    assert r.map(7, 500, 9000) == (500, 9000)
    now[0] += 0.033
    assert r.map(7, 505, 12000) == (505, 12000)  # 501-504 lost upstream: the gap stays
    now[0] += 0.8  # the gateway stalled: a real gap of 3, same frame's timestamp: unchanged
    assert r.map(7, 509, 12000) == (509, 12000)
    now[0] += 2.0  # hidden for 2 s: 300 packets never sent to this subscriber
    assert r.map(7, 809, 192000) == (510, 192000)  # the source's timestamps went on with time
    now[0] += 0.033
    assert r.map(7, 810, 195000) == (511, 195000)


def test_opus_durations_from_the_toc_byte() -> None:
    assert forward_stats.opus_samples(bytes([0x78])) == 960  # hybrid 20 ms
    assert forward_stats.opus_samples(bytes([(31 << 3)])) == 960  # CELT 20 ms
    assert forward_stats.opus_samples(bytes([(1 << 3) | 1])) == 1920  # SILK 20 ms, two frames
    assert forward_stats.opus_samples(bytes([(3 << 3) | 3, 3])) == 3 * 2880  # 3 x 60 ms
    assert forward_stats.opus_samples(b"") == 960


def test_remb_goes_to_the_publisher_at_most_once_a_second_or_on_a_drop() -> None:
    estimates = iter([(900, [1]), None, (950, [1]), (800, [1]), (700, [1]), (1200, [1])])

    class Estimator:  # aiortc's estimator's interface: an estimate when it updates
        def add(self, **_: int) -> tuple[int, list[int]] | None:
            return next(estimates)

    remb = rtp_forward.RembPacing(Estimator())
    sent = [remb.add(arrival_time_ms=t, abs_send_time=0, payload_size=1000, ssrc=1)
            for t in (0, 100, 120, 150, 600, 1300)]
    # the first; 950 (a rise) too soon; 800 a drop but within 200 ms of the last sent; 700 a
    # drop 600 ms after; 1200 a rise 700 ms after the last sent (not yet a second)
    assert sent == [(900, [1]), None, None, None, (700, [1]), None]
