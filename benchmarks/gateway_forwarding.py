"""Benchmark: the gateway's CPU per forwarded video stream.

Starts a jb-gateway process (Redis from JB_BENCH_REDIS_URL, else a throwaway redis-server),
connects N synthetic participants on loopback that each send a 1280x720 VP8 stream at 30 fps
(about 1.3 Mbit/s) and receive everyone else's, and reads the gateway's CPU time from /proc over
a window, with the frames it forwarded (its /ready counter).

The participants must not be the bottleneck on a 2-core machine: the 720p VP8 picture is
encoded once at start (60 frames, a keyframe first, looped) and sent as encoded packets, which
aiortc only packetizes; the receivers use the same pass-through hook as the gateway, so they
count frames without decoding them. (Encoding and decoding 720p in this process, as the first
version did, let only 4-8 of the 180 frames/s through.)

    .venv/bin/python benchmarks/gateway_forwarding.py [--participants 6] [--seconds 20] [--runs 3]

Target (issue 4): a 6-participant room (30 forwarded streams) on <= 50 % of one core.
Saves benchmarks/results/gateway_forwarding.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from jbcalling.client import SyntheticPeer
from jbcalling.gateway import ice, passthrough

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
FPS = 30
VIDEO_CLOCK = fractions.Fraction(1, 90000)


def precode(seconds: int = 2, width: int = 1280, height: int = 720,
            bitrate: int = 1_300_000) -> list[bytes]:
    """A moving gradient encoded with libvpx (real-time settings, a keyframe first)."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.bit_rate, ctx.gop_size = bitrate, seconds * FPS
    ctx.framerate, ctx.time_base = fractions.Fraction(FPS, 1), fractions.Fraction(1, FPS)
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    base = np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1))
    packets = []
    for n in range(seconds * FPS):
        y = np.roll(base, n * 7, axis=1).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.stack([y, np.roll(y, 40, 0), 255 - y], axis=2),
                                           format="rgb24").reformat(format="yuv420p")
        frame.pts = n
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    return [bytes(p) for p in packets]


class PrecodedVideo(MediaStreamTrack):
    """Sends the precoded 720p30 VP8 frames in a loop, paced at 30 fps, as av.Packets."""

    kind = "video"

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self.frames, self.n, self.start = frames, 0, 0.0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if not self.start:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.n / FPS - time.monotonic()))
        packet = av.Packet(self.frames[self.n % len(self.frames)])
        packet.pts, packet.time_base = self.n * (90000 // FPS), VIDEO_CLOCK
        self.n += 1
        return packet


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_run(gateway: str, pid: int, participants: int, seconds: float,
                  frames: list[bytes]) -> dict[str, Any]:
    peers = [SyntheticPeer(gateway, "benchroom", f"bench{i:03d}") for i in range(participants)]
    received: dict[str, Counter[str]] = {p.pid: Counter() for p in peers}
    async with httpx.AsyncClient(timeout=30) as http:
        for peer in peers:
            await _connect(peer, http, frames, received[peer.pid])
        await asyncio.sleep(5)  # DTLS, first keyframes
        load0 = (await http.get(gateway + "/ready")).json()["load"]
        got0 = sum(sum(c.values()) for c in received.values())
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        got1 = sum(sum(c.values()) for c in received.values())
        load1 = (await http.get(gateway + "/ready")).json()["load"]
    for peer in peers:
        await peer.close()
    streams = participants * (participants - 1)
    core = (c1 - c0) / (t1 - t0)
    # forwarded_video_frames counts frames coming in; each goes out to participants - 1 peers
    in_fps = (load1["forwarded_video_frames"] - load0["forwarded_video_frames"]) / (t1 - t0)
    out_fps = in_fps * (participants - 1)
    return {"gateway_core_fraction": round(core, 4), "streams": streams,
            "core_per_stream": round(core / streams, 5),
            "forwarded_frames_out_per_s": round(out_fps, 1), "expected_per_s": streams * FPS,
            "frames_received_by_participants_per_s": round((got1 - got0) / (t1 - t0), 1),
            # if fewer frames than 30 fps per stream got through: per stream at 30 fps
            "core_per_stream_at_30fps": round(core / out_fps * FPS, 5) if out_fps else None,
            "video_encoders_started": load1["video_encoders_started"]}


async def _connect(peer: SyntheticPeer, http: httpx.AsyncClient, frames: list[bytes],
                   counts: Counter[str]) -> None:
    from aiortc import RTCSessionDescription

    resp = await http.post(f"{peer.gateway}/v1/rooms/{peer.room}/peers/{peer.pid}/offer")
    resp.raise_for_status()

    @peer.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            peer.tasks.append(asyncio.ensure_future(_count(track, counts)))

    await peer.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
    peer.pc.addTrack(peer.audio)
    peer.pc.addTrack(PrecodedVideo(frames))
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    (await http.post(f"{peer.gateway}/v1/rooms/{peer.room}/peers/{peer.pid}/answer",
                     json={"sdp": peer.pc.localDescription.sdp})).raise_for_status()


async def _count(track: MediaStreamTrack, counts: Counter[str]) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while time.monotonic() < deadline:
            await track.recv()  # an av.Packet: the pass-through hook skips decoding
            counts[track.id] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    participants = max(2, min(args.participants, 6))
    ice.use_host_addresses(["127.0.0.1"])
    passthrough.install()  # receivers count encoded frames; this process decodes no video
    frames = precode()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="jb-bench-"))
    redis_url = os.environ.get("JB_BENCH_REDIS_URL", "")
    redis_proc = None
    if not redis_url:
        rport = free_port()
        redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                                       str(rport), "--save", "", "--dir", str(tmp)],
                                      stdout=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{rport}/0"
    port = free_port()
    env = {**os.environ, "JB_GATEWAY_PORT": str(port), "JB_GATEWAY_REDIS_URL": redis_url,
           "JB_GATEWAY_ICE_ADDRESSES": '["127.0.0.1"]', "JB_GATEWAY_LOG_LEVEL": "warning",
           # forwarding alone: no stt to stream the speech taps to (a dev cluster's Consul may
           # be running on the default port); the taps still decode every speaker's audio
           "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1"}
    gw = subprocess.Popen([str(Path(sys.executable).parent / "jb-gateway")], env=env,
                          stderr=(tmp / "gateway.log").open("wb"))
    gateway = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(gateway + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("jb-gateway did not become ready: " + (tmp / "gateway.log").read_text()[-2000:])
        runs = []
        for i in range(max(1, min(args.runs, 10))):
            r = asyncio.run(one_run(gateway, gw.pid, participants, args.seconds, frames))
            runs.append(r)
            print(f"run {i + 1}: gateway {r['gateway_core_fraction'] * 100:.1f} % of a core for "
                  f"{r['streams']} streams = {r['core_per_stream'] * 100:.2f} % per stream; "
                  f"{r['forwarded_frames_out_per_s']} of {r['expected_per_s']} frames/s "
                  f"forwarded; video encoders started {r['video_encoders_started']}")
    finally:
        gw.terminate()
        gw.wait(15)
        if redis_proc:
            redis_proc.terminate()
    per_stream = statistics.median(r["core_per_stream"] for r in runs)
    at_30 = [r["core_per_stream_at_30fps"] for r in runs if r["core_per_stream_at_30fps"]]
    per_stream_30 = statistics.median(at_30) if at_30 else None
    room = statistics.median(r["gateway_core_fraction"] for r in runs)
    result = {"participants": participants, "seconds": args.seconds, "runs": runs,
              "median_gateway_core_fraction": room,
              "median_core_per_stream": per_stream,
              "median_core_per_stream_at_30fps": per_stream_30,
              "projected_30_streams_core_fraction": round((per_stream_30 or per_stream) * 30, 3),
              "target_30_streams_core_fraction": 0.5,
              "met": (per_stream_30 or per_stream) * 30 <= 0.5,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "cpus": os.cpu_count(),
              "note": "senders send precoded 720p30 VP8 (about 1.3 Mbit/s) and receivers do not "
                      "decode; the gateway's CPU is its own (/proc utime+stime)"}
    out = HERE / "results" / "gateway_forwarding.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"median: gateway {room * 100:.1f} % of a core for {participants * (participants - 1)} "
          f"streams; {per_stream * 100:.2f} % per stream ({(per_stream_30 or 0) * 100:.2f} % at a "
          f"full 30 fps); 30 streams -> {result['projected_30_streams_core_fraction'] * 100:.0f} % "
          f"(target <= 50 %); load average {load_before} -> {result['loadavg_after']}; saved {out}")

if __name__ == "__main__":
    main()
