"""The participants of benchmarks/gateway_vs_janus.py, spread over worker processes.

One Python process cannot be the clients of a 6-person room on this machine: receiving 30
720p streams and sending 6 with aiortc takes about 1.5 cores, so the participants run in
``--client-processes`` workers (participant i in worker i % K). Each worker sends the precoded
720p30 VP8 of benchmarks/gateway_forwarding.py and counts frames with its non-decoding receivers,
per stream; the main process asks every worker for its counters at the window's edges.

Worker commands (a tuple over a pipe, answered with ("ok", value) or ("error", traceback)):
``gateway`` join the jb-gateway room; ``janus_publish`` publish to the Janus room (-> feeds);
``janus_subscribe`` the other feeds, in one connection each or all in one; ``snapshot`` frames
per stream, frames each source sent, the worker's CPU seconds; ``close``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import gateway_forwarding as gf
import httpx
import janus_sfu
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

from jbcalling.client import SyntheticPeer
from jbcalling.gateway import ice

ROOM = 4242


def name(i: int) -> str:
    return f"bench{i:03d}"


class Load:
    """One worker's participants: frame counters per stream (receiver <- sender), the sources,
    and everything to close."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.counts: dict[str, Counter[str]] = {}
        self.pcs: list[RTCPeerConnection] = []
        self.peers: list[SyntheticPeer] = []
        self.sources: list[gf.PrecodedVideo] = []
        self.janus: janus_sfu.JanusClient | None = None

    def source(self) -> gf.PrecodedVideo:
        self.sources.append(gf.PrecodedVideo(self.frames))
        return self.sources[-1]

    def receive(self, stream: str, track: MediaStreamTrack) -> asyncio.Task[None]:
        """Counts ``track``'s frames as ``stream`` (video) or ``stream#audio``."""
        stream += "#audio" if track.kind == "audio" else ""
        self.counts[stream] = Counter()  # one Counter per stream: track ids need not be unique
        return asyncio.ensure_future(gf.count_frames(track, self.counts[stream]))

    def snapshot(self) -> tuple[dict[str, int], list[int], float]:
        return ({k: sum(c.values()) for k, c in self.counts.items()}, [s.n for s in self.sources],
                gf.cpu_seconds(os.getpid()))

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        for pc in self.pcs:
            await pc.close()
        if self.janus:
            await self.janus.close()


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def gateway_join(load: Load, base: str, indices: list[int]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for i in indices:
            peer = SyntheticPeer(base, "benchroom", name(i), camera=False)
            load.peers.append(peer)
            resp = await http.post(f"{base}/v1/rooms/benchroom/peers/{peer.pid}/offer")
            if resp.is_error:
                raise RuntimeError(f"gateway offer: {resp.status_code} {resp.text[:500]}")

            def on_track(track: MediaStreamTrack, peer: SyntheticPeer = peer) -> None:
                mid = str(next(t.mid for t in peer.pc.getTransceivers() if t.receiver.track is track))
                if mid != peer.speech_mid:  # the translated speech track is no participant's
                    peer.tasks.append(load.receive(f"{peer.pid}<-mid{mid}", track))

            peer.pc.on("track", on_track)
            await peer.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
            peer.pc.addTrack(peer.audio)
            peer.pc.addTrack(load.source())
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
            (await http.post(f"{base}/v1/rooms/benchroom/peers/{peer.pid}/answer",
                             json={"sdp": peer.pc.localDescription.sdp})).raise_for_status()


async def janus_room(base: str, n: int) -> None:
    """The VideoRoom all participants join: VP8 and Opus, no bitrate cap, no periodic PLI."""
    client = janus_sfu.JanusClient(base)
    await client.open()
    try:
        await client.request(await client.attach(), {
            "request": "create", "room": ROOM, "publishers": n, "bitrate": 0, "fir_freq": 0,
            "audiocodec": "opus", "videocodec": "vp8", "notify_joining": False})
    finally:
        await client.close()


async def janus_publish(load: Load, base: str, indices: list[int]) -> dict[int, int]:
    """Publishes each participant (audio and the precoded video); returns their feed ids once
    their connections are up (Janus offers a feed to subscribers only then)."""
    load.janus = client = janus_sfu.JanusClient(base)
    await client.open()
    feeds = {}
    for i in indices:
        pc = _pc()
        load.pcs.append(pc)
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(load.source())
        await pc.setLocalDescription(await pc.createOffer())
        handle = await client.attach()
        joined = await client.request(handle, {"request": "join", "ptype": "publisher",
                                               "room": ROOM, "display": name(i)})
        feeds[i] = int(joined["plugindata"]["data"]["id"])
        reply = await client.request(handle, {"request": "publish", "audio": True, "video": True},
                                     jsep={"type": "offer", "sdp": pc.localDescription.sdp,
                                           "trickle": False})
        await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "answer"))
    deadline = time.monotonic() + 60
    while any(pc.connectionState != "connected" for pc in load.pcs):
        if time.monotonic() > deadline:
            raise RuntimeError("Janus: publishers not connected within 60 s: "
                               f"{[pc.connectionState for pc in load.pcs]}")
        await asyncio.sleep(0.2)
    return feeds


async def janus_subscribe(load: Load, indices: list[int], feeds: dict[int, int],
                          per_feed: bool) -> None:
    """Each participant subscribes to every other feed: ``per_feed`` one connection per feed
    (Janus's classic way), else one connection for all (Janus 1.x multistream: one socket per
    subscriber, like the gateway's one peer connection per participant)."""
    for i in indices:
        others = {feed: j for j, feed in feeds.items() if j != i}
        for group in ([[f] for f in others] if per_feed else [list(others)]):
            await _janus_connection(load, i, group, others)


async def _janus_connection(load: Load, i: int, group: list[int], others: dict[int, int]) -> None:
    assert load.janus, "janus_publish first"
    pc = _pc()
    load.pcs.append(pc)
    source_of_mid: dict[str, int] = {}

    def on_track(track: MediaStreamTrack) -> None:
        # Janus gives every subscriber track the same stream id: count per mid (= per feed)
        mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
        load.receive(f"{name(i)}<-{name(others[source_of_mid[str(mid)]])}", track)

    pc.on("track", on_track)
    handle = await load.janus.attach()
    offer = await load.janus.request(handle, {"request": "join", "ptype": "subscriber", "room": ROOM,
                                              "streams": [{"feed": f} for f in group]})
    for stream in offer["plugindata"]["data"].get("streams", []):
        if "feed_id" in stream:
            source_of_mid[str(stream["mid"])] = int(stream["feed_id"])
    await pc.setRemoteDescription(RTCSessionDescription(offer["jsep"]["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await load.janus.request(handle, {"request": "start", "room": ROOM},
                             jsep={"type": "answer", "sdp": pc.localDescription.sdp,
                                   "trickle": False})


def worker(conn: Connection, host_ip: str, frames: list[bytes], nice: int = 0) -> None:
    """A worker process: receivers that do not decode, ICE only on the veth address; ``nice``
    added to its scheduling niceness (the load generators yield the CPU to the SFU measured)."""
    if nice:
        os.nice(nice)
    gf.install_receivers()
    ice.use_host_addresses([host_ip])
    asyncio.run(_serve(conn, Load(frames)))


async def _serve(conn: Connection, load: Load) -> None:
    loop = asyncio.get_running_loop()
    while True:
        cmd, *args = await loop.run_in_executor(None, conn.recv)
        try:
            value: Any = None
            if cmd == "gateway":
                await gateway_join(load, *args)
            elif cmd == "janus_publish":
                value = await janus_publish(load, *args)
            elif cmd == "janus_subscribe":
                await janus_subscribe(load, *args)
            elif cmd == "snapshot":
                value = load.snapshot()
            elif cmd == "close":
                await load.close()
            conn.send(("ok", value))
        except Exception:
            conn.send(("error", traceback.format_exc()))
        if cmd == "close":
            return


class Clients:
    """K worker processes; :meth:`call` sends one command per worker and waits for all."""

    def __init__(self, k: int, host_ip: str, frames: list[bytes], nice: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")  # no inherited event loop or threads
        self.conns, self.procs = [], []
        for _ in range(k):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(theirs, host_ip, frames, nice),
                               daemon=True)
            proc.start()
            self.conns.append(mine)
            self.procs.append(proc)

    def share(self, n: int) -> list[list[int]]:
        """Participant indices per worker."""
        return [list(range(w, n, len(self.conns))) for w in range(len(self.conns))]

    def call(self, commands: list[tuple[Any, ...]], timeout: float = 180) -> list[Any]:
        for conn, command in zip(self.conns, commands, strict=True):
            conn.send(command)
        values = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise RuntimeError(f"a client worker did not answer {commands[0][0]} in {timeout} s")
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError(f"client worker failed:\n{value}")
            values.append(value)
        return values

    def close(self) -> None:
        try:
            self.call([("close",)] * len(self.conns), timeout=30)
        except (RuntimeError, OSError, EOFError) as exc:
            print(f"closing the clients: {exc}", flush=True)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
