"""A synthetic participant, for `jbctl probe` and the tests: a real aiortc peer that sends a
camera-like VP8 stream and a microphone that plays given PCM, and records what it receives per
slot (by mid): decoded frames, loud audio frames and when they came. Negotiation, rejoin and the
event loop of a participant are in negotiation.py."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import Counter
from typing import Any

import av
import httpx
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack

log = logging.getLogger("jbcalling.client")


def ice_servers_of(join: dict[str, Any]) -> list[RTCIceServer]:
    """The ICE servers of a join answer (``ice_servers``, the browser's RTCIceServer shape)."""
    return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in join.get("ice_servers") or []]


class SyntheticPeer:
    def __init__(self, gateway: str, room: str, pid: str,
                 audio: MediaStreamTrack | None = None, camera: bool = True,
                 ice_servers: list[RTCIceServer] | None = None) -> None:
        self.gateway, self.room, self.pid = gateway, room, pid
        self.camera = camera  # False: send no video (receive only)
        # The ICE servers signaling handed out (none on the dev cluster and in tests). Never
        # aiortc's default: given None it asks a public STUN server.
        self.ice_servers = list(ice_servers or [])
        self.pc = self._new_pc()
        self.frames: Counter[str] = Counter()  # mid -> decoded frames received
        self.sizes: dict[str, tuple[int, int]] = {}
        self.loud: Counter[str] = Counter()  # mid -> audio frames with a peak above silence
        self.loud_at: dict[str, list[float]] = {}  # mid -> wall times of loud frames
        self.audio = audio or AudioStreamTrack()
        self.tasks: list[asyncio.Task[None]] = []
        self.negotiations = 0  # peer connections set up (1 + rejoins)

    async def renew(self) -> None:
        """Drop the peer connection and its counters; a fresh one is ready to negotiate.
        (aiortc stops a sender's track with its connection, so the microphone is renewed too.)"""
        await self.close()
        self.pc = self._new_pc()
        self.frames.clear()
        self.sizes.clear()
        self.loud.clear()
        self.loud_at.clear()
        self.tasks = []
        self.audio = self.audio.renew() if isinstance(self.audio, PcmTrack) else AudioStreamTrack()

    def _new_pc(self) -> RTCPeerConnection:
        # max-bundle like browsers: aiortc's default answerer leaves extra video m-lines unbundled
        return RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers,
                                                  bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

    async def connect(self, http: httpx.AsyncClient) -> None:
        resp = await http.post(f"{self.gateway}/v1/rooms/{self.room}/peers/{self.pid}/offer")
        resp.raise_for_status()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
            self.tasks.append(asyncio.ensure_future(self._count(str(mid), track)))

        await self.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
        self.pc.addTrack(self.audio)
        if self.camera:
            self.pc.addTrack(VideoStreamTrack())
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        ans = await http.post(f"{self.gateway}/v1/rooms/{self.room}/peers/{self.pid}/answer",
                              json={"sdp": self.pc.localDescription.sdp})
        ans.raise_for_status()

    async def _count(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame: Any = await track.recv()
                self.frames[mid] += 1
                if track.kind == "video":
                    self.sizes[mid] = (frame.width, frame.height)
                elif abs(frame.to_ndarray()).max() > 500:
                    self.loud[mid] += 1
                    self.loud_at.setdefault(mid, []).append(time.time())

    def kinds(self) -> dict[str, str]:
        return {str(t.mid): t.kind for t in self.pc.getTransceivers()}

    def slot_mids(self) -> list[str]:
        """The gateway's layout: own audio and video first, the translated speech track last."""
        return [str(t.mid) for t in self.pc.getTransceivers()][2:-1]

    @property
    def speech_mid(self) -> str:
        return str(self.pc.getTransceivers()[-1].mid)

    def receiving(self, kind: str, at_least: int) -> int:
        """How many participant slots of ``kind`` have delivered ``at_least`` decoded frames."""
        kinds = self.kinds()
        return sum(1 for mid in self.slot_mids()
                   if kinds.get(mid) == kind and self.frames[mid] >= at_least)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


class PcmTrack(MediaStreamTrack):
    """A microphone that plays given 48 kHz mono s16le PCM in real time, then silence.
    ``renew()`` gives a new track (for a new peer connection) that plays the same queue."""

    kind = "audio"

    def __init__(self, shared: _PcmQueue | None = None) -> None:
        super().__init__()
        self.q = shared or _PcmQueue()
        self.pts = 0
        self.start: float | None = None

    @property
    def played_until(self) -> float | None:  # wall time when the queued speech ends
        return self.q.played_until

    def play(self, pcm: bytes) -> float:
        """Queue speech; returns the wall time it starts playing."""
        begin = max(time.time(), self.q.played_until or 0)
        self.q.played_until = begin + len(pcm) / 2 / 48000
        self.q.pcm.extend(pcm)
        return begin

    def renew(self) -> PcmTrack:
        return PcmTrack(self.q)

    async def recv(self) -> Any:

        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.pts / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = bytes(self.q.pcm[:1920])
        del self.q.pcm[:1920]
        samples = np.zeros(960, dtype=np.int16)
        samples[: len(chunk) // 2] = np.frombuffer(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


class _PcmQueue:
    def __init__(self) -> None:
        self.pcm = bytearray()
        self.played_until: float | None = None
