"""Writing a forwarded RTP packet for one subscriber leg and sending it at once on the
subscriber's aiortc transport: the per-datagram work of gateway/rtp_forward.py.

aiortc's own way costs, per datagram, an ``RtpPacket`` built and serialized through
``HeaderExtensionsMap.set`` and five coroutines that never wait
(``RTCDtlsTransport._send_rtp`` -> ``RTCIceTransport._send`` -> ``Connection.send`` ->
``Connection.sendto`` -> ``StunProtocol.send_data`` -> ``transport.sendto``). Here the 12-byte
header and the header-extension block are packed with :mod:`struct` from ids taken once per leg
from its negotiated parameters, the packet is SRTP-protected with the DTLS transport's own
session (``_tx_srtp``) and written with the nominated ICE pair's datagram transport: the same
bytes on the wire, in a plain function call (docs/decisions.md, "The gateway writes its RTP
packets itself"). The private names used are listed in gateway/rtp_forward.py ``NEEDED``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import pack_header_extensions

HEADER = struct.Struct("!BBHII")  # V=2 P X CC, M PT, sequence number, timestamp, SSRC
HEADER_WITH_EXTENSIONS = struct.Struct("!BBHIIHH")  # ... then profile and length in words
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
CONNECTED = State.CONNECTED
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4
_fallback_sends: set[asyncio.Future[None]] = set()


class Extensions:
    """One leg's header extensions: its mid (fixed), abs-send-time and audio level (per
    packet), with the ids its peer negotiated."""

    def __init__(self, parameters: RTCRtpSendParameters) -> None:
        ids = {e.uri: e.id for e in parameters.headerExtensions}
        mid = (parameters.muxId or "").encode()
        self.ids = (ids.get(MID) if mid else None, ids.get(ABS_SEND_TIME), ids.get(AUDIO_LEVEL))
        self.mid = mid
        # one-byte elements (id 1-14, 1-16 bytes of value); else aiortc's general packing
        self.one_byte = all(i is None or 0 < i < 15 for i in self.ids) and len(mid) <= 16
        mid_id, abs_id, level_id = (i or 0 for i in self.ids)
        self._mid = bytes([(mid_id << 4) | (len(mid) - 1)]) + mid if mid_id else b""
        self._abs = bytes([(abs_id << 4) | 2]) if abs_id else None
        self._level = (level_id << 4) if level_id else None

    def block(self, abs_send_time: bytes, level: tuple[bool, int] | None) -> bytes:
        """The extension elements, padded to 32-bit words (no profile/length words)."""
        if not self.one_byte:
            return self._general(abs_send_time, level)
        body = self._mid
        if self._abs is not None:
            body += self._abs + abs_send_time
        if level is not None and self._level is not None:
            body += bytes((self._level, (0x80 if level[0] else 0) | level[1]))
        return body + _PAD[len(body) & 3]

    def _general(self, abs_send_time: bytes, level: tuple[bool, int] | None) -> bytes:
        mid_id, abs_id, level_id = self.ids
        elements = [(mid_id, self.mid)] if mid_id else []
        if abs_id:
            elements.append((abs_id, abs_send_time))
        if level_id and level is not None:
            elements.append((level_id, bytes([(0x80 if level[0] else 0) | level[1]])))
        return pack_header_extensions(elements)[1]

    @property
    def profile(self) -> int:
        return ONE_BYTE_PROFILE if self.one_byte else 0x1000


def packet(payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int,
           extensions: bytes, profile: int, payload: bytes) -> bytes:
    """An RTP packet (no CSRC, no padding) with the given extension block."""
    if not extensions:
        return HEADER.pack(0x80, (marker << 7) | payload_type, seq, timestamp, ssrc) + payload
    return HEADER_WITH_EXTENSIONS.pack(0x90, (marker << 7) | payload_type, seq, timestamp, ssrc,
                                       profile, len(extensions) >> 2) + extensions + payload


def rtx(data: bytes, payload_type: int, seq: int, ssrc: int) -> bytes:
    """``data`` (a packet written by :func:`packet`) as an RTX retransmission (RFC 4588): same
    marker, timestamp and extensions, the RTX stream's payload type, sequence number and SSRC,
    the original sequence number before the payload."""
    end = 12 + (4 + 4 * int.from_bytes(data[14:16], "big") if data[0] & 0x10 else 0)
    return (HEADER.pack(data[0], (data[1] & 0x80) | payload_type, seq,
                        int.from_bytes(data[4:8], "big"), ssrc)
            + data[12:end] + data[2:4] + data[end:])


def send(transport: Any, data: bytes) -> bool:
    """SRTP-protect ``data`` with ``transport``'s (an RTCDtlsTransport) session and write it to
    its nominated ICE pair; False, nothing sent, when it is not connected."""
    if transport._state is not CONNECTED:
        return False
    pair = transport.transport._connection._nominated.get(1)
    if pair is None:
        return False
    try:
        data = transport._tx_srtp.protect(data)
    except (ValueError, pylibsrtp.Error):  # longer than the MTU aiortc allows: never forwarded
        return False
    protocol = pair.protocol
    if type(protocol) is StunProtocol:  # a host or server-reflexive candidate: a plain socket
        protocol.transport.sendto(data, pair.remote_addr)
    else:  # a relayed candidate (TURN): its own send coroutine; the gateway has no TURN server
        task = asyncio.ensure_future(protocol.send_data(data, pair.remote_addr))
        _fallback_sends.add(task)
        task.add_done_callback(_fallback_sends.discard)
    # what getStats reports for the transport (aiortc 1.16 counts in RTCDtlsTransport._send_rtp)
    transport._RTCDtlsTransport__tx_bytes += len(data)
    transport._RTCDtlsTransport__tx_packets += 1
    return True
