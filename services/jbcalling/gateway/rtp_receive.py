"""Receiving a publisher's RTP in the datagram callback: the receive side of
gateway/rtp_forward.py (gateway/rtp_wire.py is the send side).

aiortc 1.16 receives each datagram through aioice: the ICE pair's
``StunProtocol.datagram_received`` first parses it as STUN (an exception for every media
packet), then puts it on the connection's asyncio queue, from which the DTLS transport's task
takes it through three coroutines (``Connection.recv`` -> ``RTCIceTransport._recv`` ->
``RTCDtlsTransport._recv_next``) before it is decrypted, parsed and handed to its receiver.
Once a peer connection is up, :func:`receive_directly` does that work in the nominated pair's
datagram callback itself: an SRTP packet (first byte 128-191, not RTCP) is decrypted with the
transport's own session, parsed and routed as aiortc does, and its receiver's handler (the
forwarding hook, then aiortc's bookkeeping: receiver reports, NACKs, REMB, the audio jitter
buffer) runs at once. Everything else (STUN, DTLS, RTCP) goes the usual way. The private names
used are listed in gateway/rtp_forward.py ``NEEDED``.

The receiver's handler is a coroutine; :func:`run_now` runs it to its end in the callback when
it never waits (it only awaits sends, which do not), and as a task from where it stopped
otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import State
from aiortc.rtp import RtpPacket

from jbcalling.gateway import forward_stats as stats

log = logging.getLogger("jbcalling.gateway.rtp_receive")
CONNECTED = State.CONNECTED
NTP_EPOCH_MS = 2_208_988_800_000  # aiortc's arrival times: milliseconds since 1900 (clock.py)
_unfinished: set[asyncio.Future[None]] = set()


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` now; if it waits on something, finish it as a task."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    except Exception:  # one bad packet must not end the datagram callback
        log.exception("handling a received RTP packet failed")
        return
    task = asyncio.ensure_future(_finish(coro, waiting))
    _unfinished.add(task)
    task.add_done_callback(_unfinished.discard)


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    while True:
        try:
            # the future it yielded (None: a bare yield, as asyncio.sleep(0) does); its outcome
            # reaches the coroutine when it is resumed, as under a task
            await (waiting if waiting is not None else asyncio.sleep(0))
        except asyncio.CancelledError:
            coro.close()
            raise
        except Exception:  # the coroutine reads the future's exception itself
            pass
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("handling a received RTP packet failed")
            return


def receive_directly(dtls: Any) -> bool:
    """Take ``dtls``'s (an RTCDtlsTransport) RTP from its nominated ICE pair's datagram callback;
    False when it has no nominated pair on a plain socket (then aiortc's path stays)."""
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol) is not StunProtocol:
        return False
    protocol: Any = pair.protocol
    if "datagram_received" in vars(protocol):  # installed already
        return True
    usual = protocol.datagram_received

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        srtp = dtls._rx_srtp
        if (len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 208
                or srtp is None or dtls._state is not CONNECTED):
            usual(data, addr)  # STUN, DTLS, RTCP, or a transport not (or no longer) up
            return
        arrival_ms = int(time.time() * 1000) + NTP_EPOCH_MS
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error:
            stats.receive_path["unprotect_failed"] += 1
            return
        dtls._RTCDtlsTransport__rx_bytes += len(data)  # what getStats reports
        dtls._RTCDtlsTransport__rx_packets += 1
        try:
            packet = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
        except ValueError:
            stats.receive_path["unparsable"] += 1
            return
        receiver = dtls._rtp_router.route_rtp(packet)
        if receiver is not None:
            stats.receive_path["direct"] += 1
            run_now(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_ms))

    protocol.datagram_received = datagram_received
    return True
