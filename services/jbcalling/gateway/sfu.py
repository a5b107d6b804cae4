"""Rooms of peer connections that forward each participant's media to the others.

The gateway makes the offer: every peer connection has two receive transceivers (the
participant's microphone and camera), ``max_peers - 1`` pairs of send slots (audio, video) that
other participants fill as they arrive, and one audio track of translated speech. No
renegotiation is needed when someone joins or leaves; ``slots`` events tell the client which
participant each slot (by mid) carries.

A muted participant (``Room.muted``, set by signaling: docs/security.md, "Host mute") still
sends their microphone here, but it goes nowhere: no slot receives it and the speech tap drops
it, so stt never hears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import MediaSlot, MediaSlots, Publish
from jbcalling.gateway import forward_stats, rtp_forward, tap_decoding
from jbcalling.gateway.pacing import BURST, FACTOR, Pacer
from jbcalling.gateway.speech_track import SpeechTrack

log = logging.getLogger("jbcalling.gateway.sfu")
AudioTap = Callable[[str, str, av.AudioFrame], None]      # (room, participant, frame)
KEYFRAME_INTERVAL = 0.3  # seconds between two keyframe requests to one source


class GatewayFull(ServiceError):
    """No room for another room or peer here: 503, retry elsewhere or later."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(503, code, message)


@dataclass
class Slot:
    audio: rtp_forward.Leg
    video: rtp_forward.Leg
    audio_mid: str = ""
    video_mid: str = ""
    source: str | None = None


@dataclass
class Peer:
    id: str
    pc: RTCPeerConnection
    slots: list[Slot]
    speech: SpeechTrack
    pacer: Pacer
    receivers: dict[str, Any] = field(default_factory=dict)  # kind -> RTCRtpReceiver
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def slot_of(self, source: str) -> Slot | None:
        return next((s for s in self.slots if s.source == source), None)


class Room:
    def __init__(self, room_id: str, sfu: Sfu) -> None:
        self.id = room_id
        self.sfu = sfu
        self.peers: dict[str, Peer] = {}
        # participants whose audio goes nowhere; kept across their reconnects, gone with the room
        self.muted: set[str] = set()
        # subscriber -> sources whose tiles its page does not show: their video is paused for it
        # (set by signaling, Sfu.set_hidden; a new peer connection of the subscriber starts with
        # everything shown and its page sends the set again)
        self.hidden: dict[str, frozenset[str]] = {}
        # sinks() by (source, kind), for every packet received; emptied by changed(), which
        # every change of peers, slots or hidden tiles calls (mute is checked per packet)
        self._sinks: dict[tuple[str, str], list[rtp_forward.Leg]] = {}

    def changed(self) -> None:
        self._sinks.clear()

    def sinks(self, source: str, kind: str) -> list[rtp_forward.Leg]:
        """The legs that get ``source``'s ``kind`` now: called for every packet received."""
        if kind == "audio" and source in self.muted:
            self.sfu.muted_frames_dropped += 1
            return []
        legs = self._sinks.get((source, kind))
        if legs is None:
            legs = self._sinks[(source, kind)] = self._find_sinks(source, kind)
        return legs

    def _find_sinks(self, source: str, kind: str) -> list[rtp_forward.Leg]:
        out = []
        for peer in self.peers.values():
            slot = peer.slot_of(source)
            if slot is None:
                continue
            if kind == "video" and source in self.hidden.get(peer.id, ()):
                continue  # a tile this subscriber cannot see: no video (audio goes on)
            out.append(slot.audio if kind == "audio" else slot.video)
        return out

    def paused_streams(self) -> int:
        """(subscriber, source) pairs whose video is paused now: both connected here."""
        return sum(len(hidden & self.peers.keys() - {sub})
                   for sub, hidden in self.hidden.items() if sub in self.peers)

    async def assign_slots(self) -> None:
        """Give every publisher a slot at every other peer; tell each peer its slot map.

        Peers come and go during the awaits below (each change calls this again): the walk is
        over a copy, and a peer or source gone meanwhile is skipped."""
        for peer in list(self.peers.values()):
            if self.peers.get(peer.id) is not peer:
                continue
            others = [p for p in self.peers if p != peer.id]
            for slot in peer.slots:
                if slot.source is not None and slot.source not in others:
                    slot.source = None
                    self.changed()
            for other in others:
                if peer.slot_of(other) is None:
                    free = next((s for s in peer.slots if s.source is None), None)
                    if free is None:
                        continue
                    source_peer = self.peers.get(other)
                    if source_peer is None:
                        continue
                    free.source = other
                    self.changed()
                    self.sfu.request_keyframe(self.id, other)  # the newcomer needs a keyframe
            await self.sfu.publish(self.id, MediaSlots(to=peer.id, slots=[
                MediaSlot(participant=s.source, audio_mid=s.audio_mid, video_mid=s.video_mid)
                for s in peer.slots if s.source]))


class Sfu:
    def __init__(self, max_rooms: int, max_peers: int, publish: Publish, tap: AudioTap,
                 pacing_burst: int = BURST, pacing_factor: float = FACTOR) -> None:
        self.max_rooms = max_rooms
        self.pacing = (pacing_burst, pacing_factor)
        self.max_peers = max_peers
        self.publish = publish
        self.tap = tap
        self.rooms: dict[str, Room] = {}
        self.muted_frames_dropped = 0  # audio frames of muted participants that went nowhere
        self._background: set[asyncio.Future[None]] = set()
        # keyframe requests per (room, source): when the last went out, and whether one waits
        self._keyframe_sent: dict[tuple[str, str], float] = {}
        self._keyframe_waiting: set[tuple[str, str]] = set()
        # called after a peer left, whatever the reason (its connection failed, it left, a
        # reconnect replaced it): the app stops that speaker's tap and stt stream
        self.on_leave: Callable[[str, str], Awaitable[None]] | None = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def peer_count(self) -> int:
        return sum(len(r.peers) for r in self.rooms.values())

    async def offer(self, room_id: str, pid: str, muted: bool = False) -> str:
        """A new peer connection for ``pid`` in ``room_id``; returns the gateway's SDP offer.
        ``muted``: the participant's audio goes nowhere until :meth:`mute` lifts it."""
        room = self.rooms.get(room_id)
        if room is None:
            if len(self.rooms) >= self.max_rooms:
                raise GatewayFull("gateway_full", f"this gateway serves {self.max_rooms} rooms")
            room = self.rooms[room_id] = Room(room_id, self)
        if pid in room.peers:
            await self.leave(room_id, pid)  # a reconnect replaces the old connection
            room = self.rooms.setdefault(room_id, Room(room_id, self))
        if len(room.peers) >= self.max_peers:
            raise GatewayFull("room_full", f"this room has {self.max_peers} media peers")
        if muted:
            room.muted.add(pid)
        else:
            room.muted.discard(pid)
        # One transport for all media: with "balanced", aiortc gives video its own ICE/DTLS
        # transport, which costs a second connectivity check per peer.
        # No STUN/TURN for the gateway itself: it sits on the address it announces (clients use
        # TURN when they need it). An explicit empty list, never aiortc's default (a public STUN
        # server, which a self-hosted gateway must not contact).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[],
                                                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        for kind in ("audio", "video"):
            pc.addTransceiver(kind, direction="recvonly")
        slots = []
        pacer = Pacer(*self.pacing)  # one per subscriber: its legs share one transport (BUNDLE)
        for _ in range(self.max_peers - 1):
            # the legs send what the sources send; the senders' own RTP loops stay idle
            ta = pc.addTransceiver(rtp_forward.IdleTrack("audio"), direction="sendonly")
            tv = pc.addTransceiver(rtp_forward.IdleTrack("video"), direction="sendonly")
            slot = Slot(rtp_forward.Leg(ta.sender, "audio", pacer),
                        rtp_forward.Leg(tv.sender, "video", pacer))
            # a subscriber's PLI/FIR, and a leg that can start sending, need a keyframe
            slot.video.on_keyframe_request = self._keyframe_for(room, slot, relayed=True)
            slot.video.on_ready = self._keyframe_for(room, slot, relayed=False)
            slots.append(slot)
        speech = SpeechTrack()
        pc.addTransceiver(speech, direction="sendonly")
        _prefer(pc)
        peer = Peer(pid, pc, slots, speech, pacer)
        room.peers[pid] = peer
        room.changed()
        pc.on("track", lambda track: self._on_track(room, peer, track))
        pc.on("connectionstatechange", lambda: self._on_state(room, peer))
        await pc.setLocalDescription(await pc.createOffer())
        transceivers = pc.getTransceivers()
        for i, slot in enumerate(slots):
            slot.audio_mid = transceivers[2 + 2 * i].mid or ""
            slot.video_mid = transceivers[3 + 2 * i].mid or ""
        return pc.localDescription.sdp

    async def answer(self, room_id: str, pid: str, sdp: str) -> None:
        peer = self._peer(room_id, pid)
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self.rooms[room_id].assign_slots()

    def _peer(self, room_id: str, pid: str) -> Peer:
        room = self.rooms.get(room_id)
        if room is None or pid not in room.peers:
            raise KeyError(pid)
        return room.peers[pid]

    def _keyframe_for(self, room: Room, slot: Slot, relayed: bool) -> Callable[[], None]:
        def request() -> None:
            if slot.source is not None:
                forward_stats.keyframes["relayed" if relayed else "subscriber_ready"] += 1
                self.request_keyframe(room.id, slot.source)
        return request

    def _on_track(self, room: Room, peer: Peer, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.receiver.track is track)
        peer.receivers[track.kind] = receiver
        if track.kind == "audio":
            def tap(frame: av.AudioFrame) -> None:
                if peer.id not in room.muted:
                    self.tap(room.id, peer.id, frame)
            tap_decoding.decode_on_loop(receiver, tap)
        kind = track.kind
        rtp_forward.forward_from(receiver, kind, lambda: room.sinks(peer.id, kind))

    def _on_state(self, room: Room, peer: Peer) -> None:
        if peer.pc.connectionState == "connected":
            # The keyframe asked for when the slots were assigned may have gone out before this
            # peer's transport was up (a browser's reconnect under load): ask again now.
            for slot in peer.slots:
                if slot.source is not None:
                    self.request_keyframe(room.id, slot.source)
        if peer.pc.connectionState in ("failed", "closed"):
            self._spawn(self.leave(room.id, peer.id, peer))

    async def leave(self, room_id: str, pid: str, only: Peer | None = None) -> None:
        """``pid`` leaves ``room_id``. ``only``: if that connection is still the participant's
        (a replaced connection closing after a reconnect must not take the new one with it)."""
        room = self.rooms.get(room_id)
        if room is None or pid not in room.peers:
            return
        if only is not None and room.peers[pid] is not only:
            return
        peer = room.peers.pop(pid)
        room.hidden.pop(pid, None)
        room.changed()
        for receiver in peer.receivers.values():
            tap_decoding.unbind_tap(receiver)
        self._keyframe_sent.pop((room_id, pid), None)
        for task in peer.tasks:
            task.cancel()
        peer.pacer.close()
        with contextlib.suppress(Exception):
            await peer.pc.close()
        if self.on_leave is not None:
            await self.on_leave(room_id, pid)
        if room.peers:
            await room.assign_slots()
        else:
            self.rooms.pop(room_id, None)

    def mute(self, room_id: str, pid: str, muted: bool) -> bool:
        """Stop or restart ``pid``'s audio going anywhere; False if the room has no media here
        (the participant's next offer carries the state)."""
        room = self.rooms.get(room_id)
        if room is None:
            return False
        if muted:
            room.muted.add(pid)
        else:
            room.muted.discard(pid)
        return True

    def set_hidden(self, room_id: str, subscriber: str, hidden: set[str]) -> bool:
        """Pause the video of the sources in ``hidden`` for ``subscriber`` (tiles its page does
        not show) and resume the others; a source shown again is asked for a keyframe, so that
        the picture comes back at once. False if ``subscriber`` has no peer connection here."""
        room = self.rooms.get(room_id)
        if room is None or subscriber not in room.peers:
            return False
        before = room.hidden.get(subscriber, frozenset())
        room.hidden[subscriber] = frozenset(hidden - {subscriber})
        room.changed()
        for source in before - room.hidden[subscriber]:
            self.request_keyframe(room_id, source)
        return True

    def request_keyframe(self, room_id: str, source_pid: str) -> None:
        """Ask ``source_pid``'s camera for a keyframe (RTCP PLI), if it sends video here: the
        one way the gateway asks a source for one. At most one request per source per
        ``KEYFRAME_INTERVAL``: one asked for inside that window goes out at its end, never lost
        (a late joiner and a subscriber's PLI at once cost the source one keyframe)."""
        key = (room_id, source_pid)
        loop = asyncio.get_running_loop()
        wait = self._keyframe_sent.get(key, -KEYFRAME_INTERVAL) + KEYFRAME_INTERVAL - loop.time()
        if wait > 0:
            forward_stats.keyframes["coalesced"] += 1
            if key not in self._keyframe_waiting:
                self._keyframe_waiting.add(key)
                loop.call_later(wait, self._keyframe_due, key)
            return
        self._send_pli(key)

    def _keyframe_due(self, key: tuple[str, str]) -> None:
        self._keyframe_waiting.discard(key)
        self._send_pli(key)  # not request_keyframe: a timer may fire a little early

    def _send_pli(self, key: tuple[str, str]) -> None:
        room = self.rooms.get(key[0])
        src = room.peers.get(key[1]) if room is not None else None
        receiver = src.receivers.get("video") if src is not None else None
        if receiver is not None:
            self._keyframe_sent[key] = asyncio.get_running_loop().time()
            self._spawn(rtp_forward.request_keyframe(receiver))

    def has_peer(self, room_id: str, pid: str) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and pid in room.peers

    def speech_targets(self, room_id: str) -> dict[str, SpeechTrack]:
        room = self.rooms.get(room_id)
        return {pid: p.speech for pid, p in room.peers.items()} if room else {}

    async def close(self) -> None:
        for room_id, room in list(self.rooms.items()):
            for pid in list(room.peers):
                await self.leave(room_id, pid)


def _prefer(pc: RTCPeerConnection) -> None:
    """Forwarding needs one codec per kind across all peers: VP8 and Opus."""
    caps = {k: RTCRtpSender.getCapabilities(k).codecs for k in ("audio", "video")}
    want = {"audio": "audio/opus", "video": "video/VP8"}
    for t in pc.getTransceivers():
        kind = t.kind
        t.setCodecPreferences([c for c in caps[kind]
                               if c.mimeType == want[kind] or c.mimeType.endswith("/rtx")])
