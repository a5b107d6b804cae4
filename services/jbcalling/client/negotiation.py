"""The media half of the participant protocol (docs/protocol.md) for Python clients:
``negotiate_over_signaling`` (media_offer -> sdp -> answer -> media_ready), ``rejoin`` (a new
peer connection, retried with backoff while no gateway answers) and ``keep_media`` (read the
room's events and rejoin on ``media_reconnect`` or a failed connection)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack

from jbcalling.client.peer import SyntheticPeer
from jbcalling.common.protocol import RETRYABLE_MEDIA_ERRORS, MediaOffer, SdpAnswer

log = logging.getLogger("jbcalling.client")


class MediaRefused(Exception):
    """Signaling answered a media negotiation with an ``error`` event."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(f"{event.get('code')}: {event.get('message')}")
        self.event = event
        self.code = str(event.get("code", ""))


async def negotiate_over_signaling(peer: SyntheticPeer, ws: Any) -> list[dict[str, Any]]:
    """Ask signaling for the gateway's offer on ``ws``, answer it, wait for media_ready.
    Returns the other events seen meanwhile (e.g. media_slots); raises MediaRefused."""
    seen: list[dict[str, Any]] = []

    async def until(kind: str) -> dict[str, Any]:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if msg["type"] == kind:
                return msg
            if msg["type"] == "error":
                raise MediaRefused(msg)
            seen.append(msg)

    await ws.send(MediaOffer().to_json())
    offer = await until("sdp")

    @peer.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in peer.pc.getTransceivers() if t.receiver.track is track)
        peer.tasks.append(asyncio.ensure_future(peer._count(str(mid), track)))

    await peer.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    peer.pc.addTrack(peer.audio)
    if peer.camera:
        peer.pc.addTrack(VideoStreamTrack())
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    await ws.send(SdpAnswer(sdp=peer.pc.localDescription.sdp).to_json())
    await until("media_ready")
    peer.negotiations += 1
    return seen


async def rejoin(peer: SyntheticPeer, ws: Any, attempts: int = 8, first_delay_s: float = 0.5,
                 max_delay_s: float = 8.0) -> list[dict[str, Any]]:
    """Negotiate again on a new peer connection after ``media_reconnect``: retried with
    exponential backoff while signaling answers a retryable error (the gateway is still away),
    and repeated once more if another ``media_reconnect`` came meanwhile. Returns the events
    seen; raises MediaRefused when the attempts are used up or the error is not retryable."""
    delay = first_delay_s
    seen: list[dict[str, Any]] = []
    for attempt in range(attempts):
        await asyncio.sleep(delay)
        await peer.renew()
        try:
            got = await negotiate_over_signaling(peer, ws)
        except MediaRefused as exc:
            if exc.code not in RETRYABLE_MEDIA_ERRORS or attempt == attempts - 1:
                raise
            log.info("media rejoin refused; retrying", extra={"code": exc.code, "delay": delay})
            delay = min(delay * 2, max_delay_s)
            continue
        seen.extend(got)
        if not any(e["type"] == "media_reconnect" for e in got):
            return seen
        delay = first_delay_s  # the gateway went away again while we negotiated
    raise MediaRefused({"code": "gateway_unreachable", "message": f"no media after {attempts} "
                        "attempts"})


async def keep_media(peer: SyntheticPeer, ws: Any, events: list[dict[str, Any]],
                     stop_after_s: float) -> None:
    """A participant's event loop: record every event of ``ws`` in ``events`` and rejoin on
    ``media_reconnect`` or when the peer connection fails; ends after ``stop_after_s``, or when
    signaling closes the socket."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + stop_after_s
    with contextlib.suppress(ConnectionClosed):
        while time.monotonic() < deadline:
            if peer.pc.connectionState == "failed":
                events.extend(await rejoin(peer, ws, first_delay_s=0))
                continue
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.01, min(1.0, deadline - time.monotonic())))
            except TimeoutError:
                continue
            msg = json.loads(raw)
            events.append(msg)
            if msg["type"] == "media_reconnect":
                events.extend(await rejoin(peer, ws, first_delay_s=msg.get("retry_ms", 500) / 1000))
