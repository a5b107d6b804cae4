"""A synthetic participant, for `jbctl probe` and the tests: a real aiortc peer that sends a
camera-like VP8 stream and a microphone that plays given PCM, and records what it receives per
slot (by mid): decoded frames, loud audio frames and when they came."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import Counter
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack


class SyntheticPeer:
    def __init__(self, gateway: str, room: str, pid: str,
                 audio: MediaStreamTrack | None = None) -> None:
        self.gateway, self.room, self.pid = gateway, room, pid
        # max-bundle like browsers: aiortc's default answerer leaves extra video m-lines unbundled
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.frames: Counter[str] = Counter()  # mid -> decoded frames received
        self.sizes: dict[str, tuple[int, int]] = {}
        self.loud: Counter[str] = Counter()  # mid -> audio frames with a peak above silence
        self.loud_at: dict[str, list[float]] = {}  # mid -> wall times of loud frames
        self.audio = audio or AudioStreamTrack()
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, http: httpx.AsyncClient) -> None:
        resp = await http.post(f"{self.gateway}/v1/rooms/{self.room}/peers/{self.pid}/offer")
        resp.raise_for_status()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
            self.tasks.append(asyncio.ensure_future(self._count(str(mid), track)))

        await self.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
        self.pc.addTrack(self.audio)
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


async def negotiate_over_signaling(peer: SyntheticPeer, ws: Any) -> list[dict[str, Any]]:
    """Ask signaling for the gateway's offer on ``ws``, answer it, wait for media_ready.
    Returns the other events seen meanwhile (e.g. media_slots)."""
    import json

    seen: list[dict[str, Any]] = []

    async def until(kind: str) -> dict[str, Any]:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if msg["type"] == kind:
                return msg
            if msg["type"] == "error":
                raise AssertionError(msg)
            seen.append(msg)

    await ws.send(json.dumps({"type": "media_offer"}))
    offer = await until("sdp")

    @peer.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in peer.pc.getTransceivers() if t.receiver.track is track)
        peer.tasks.append(asyncio.ensure_future(peer._count(str(mid), track)))

    await peer.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    peer.pc.addTrack(peer.audio)
    peer.pc.addTrack(VideoStreamTrack())
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    await ws.send(json.dumps({"type": "sdp", "sdp": peer.pc.localDescription.sdp}))
    await until("media_ready")
    return seen


class PcmTrack(MediaStreamTrack):
    """A microphone that plays given 48 kHz mono s16le PCM in real time, then silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pcm = bytearray()
        self.pts = 0
        self.start: float | None = None
        self.played_until: float | None = None  # wall time when the queued speech ends

    def play(self, pcm: bytes) -> float:
        """Queue speech; returns the wall time it starts playing."""
        begin = max(time.time(), self.played_until or 0)
        self.played_until = begin + len(pcm) / 2 / 48000
        self.pcm.extend(pcm)
        return begin

    async def recv(self) -> Any:

        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.pts / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = bytes(self.pcm[:1920])
        del self.pcm[:1920]
        samples = np.zeros(960, dtype=np.int16)
        samples[: len(chunk) // 2] = np.frombuffer(chunk, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame
