"""Benchmark: the gateway's CPU per forwarded video stream, and what its subscribers get.

Starts a jb-gateway process (Redis from JB_BENCH_REDIS_URL, else a throwaway redis-server),
connects N synthetic participants on loopback that each send a 1280x720 VP8 stream at 30 fps
(about 1.3 Mbit/s) and receive everyone else's, and over a window reads: the gateway's CPU time
(/proc), the video frames each subscriber received per stream (counted at the receivers), the
datagrams the gateway sent (the receivers' transports count what they got), and the datagrams
dropped at receiving sockets (UDP RcvbufErrors in /proc/net/snmp: this machine's, all of them).

The participants must not be the bottleneck on a 2-core machine: the 720p VP8 picture is
encoded once at start (60 frames, a keyframe first, looped) and sent as encoded packets, which
aiortc only packetizes; the receivers count frames without decoding them
(:func:`install_receivers`). (Encoding and decoding 720p in this process, as the first version
did, let only 4-8 of the 180 frames/s through.)

    .venv/bin/python benchmarks/gateway_forwarding.py [--participants 6] [--seconds 20] [--runs 3]
    .venv/bin/python benchmarks/gateway_forwarding.py --compare-uvloop   # alternating runs

Target (issue 4): a 6-participant room (30 forwarded streams) on <= 50 % of one core.
Saves benchmarks/results/gateway_forwarding.json (gateway_forwarding_uvloop.json).
benchmarks/gateway_vs_janus.py uses :func:`precode`, :class:`PrecodedVideo`,
:func:`install_receivers`, :func:`count_frames` and :func:`cpu_seconds`.
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
import gateway_proc
import httpx
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from jbcalling.client import SyntheticPeer
from jbcalling.gateway import ice

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


class _CountingDecoder:
    """A receiver's "decoder" that hands on each encoded frame undecoded, to be counted."""

    def decode(self, encoded_frame: Any) -> list[av.Packet]:
        packet = av.Packet(encoded_frame.data)
        packet.pts, packet.time_base = encoded_frame.timestamp, VIDEO_CLOCK
        return [packet]


def install_receivers() -> None:
    """Make this process's aiortc receivers hand on encoded video frames without decoding them
    (aiortc 1.16 looks ``get_decoder`` up in its receiver module): a 2-core machine cannot decode
    dozens of 720p streams, and the benchmark counts frames, not pictures."""
    from aiortc import rtcrtpreceiver
    from aiortc.codecs import get_decoder

    if not hasattr(rtcrtpreceiver, "get_decoder"):
        raise RuntimeError("aiortc changed: rtcrtpreceiver.get_decoder is gone")

    def no_video_decoding(codec: Any) -> Any:
        return _CountingDecoder() if codec.mimeType.startswith("video") else get_decoder(codec)

    rtcrtpreceiver.get_decoder = no_video_decoding


def udp_rcvbuf_errors() -> int:
    """Datagrams dropped at this machine's receiving sockets so far (their buffer was full)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


async def datagrams_received(peers: list[SyntheticPeer]) -> int:
    """Datagrams the participants' transports received (all of them come from the gateway)."""
    total = 0
    for peer in peers:
        for stat in (await peer.pc.getStats()).values():
            if stat.type == "transport":
                total += stat.packetsReceived
    return total


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
        got0 = {(p, t): n for p, c in received.items() for t, n in c.items()}
        d0, drop0 = await datagrams_received(peers), udp_rcvbuf_errors()
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        d1, drop1 = await datagrams_received(peers), udp_rcvbuf_errors()
        got1 = {(p, t): n for p, c in received.items() for t, n in c.items()}
        load1 = (await http.get(gateway + "/ready")).json()["load"]
    for peer in peers:
        await peer.close()
    streams = participants * (participants - 1)
    window = t1 - t0
    core = (c1 - c0) / window
    # frames each subscriber received of each stream (a stream missing at the end counts 0)
    per_stream = sorted((got1.get(k, 0) - got0.get(k, 0)) / window for k in got1)
    per_stream += [0.0] * (streams - len(per_stream))
    got_fps = sum(per_stream)
    sent_fps = (load1["forwarded_video_frames"] - load0["forwarded_video_frames"]) / window
    return {"gateway_core_fraction": round(core, 4), "streams": streams,
            "core_per_stream": round(core / streams, 5),
            "cpu_s_per_stream_s": round(core / streams, 5),
            "frames_received_per_s": round(got_fps, 1), "expected_per_s": streams * FPS,
            "fps_per_stream_min": round(per_stream[0], 1),
            "fps_per_stream_median": round(statistics.median(per_stream), 1),
            "frames_sent_per_s_by_gateway": round(sent_fps, 1),
            "gateway_datagrams_sent_per_s": round((d1 - d0) / window, 1),
            # robust to a loaded machine, where the participants send and read less than asked
            "gateway_cpu_us_per_datagram": round((c1 - c0) / (d1 - d0) * 1e6, 1) if d1 > d0
            else None,
            "receiver_drops": drop1 - drop0,
            # if fewer frames than 30 fps per stream got through: per stream at 30 fps
            "core_per_stream_at_30fps": round(core / got_fps * FPS, 5) if got_fps else None,
            "video_encoders_started": load1["video_encoders_started"]}


async def _connect(peer: SyntheticPeer, http: httpx.AsyncClient, frames: list[bytes],
                   counts: Counter[str]) -> None:
    from aiortc import RTCSessionDescription

    resp = await http.post(f"{peer.gateway}/v1/rooms/{peer.room}/peers/{peer.pid}/offer")
    resp.raise_for_status()

    @peer.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            peer.tasks.append(asyncio.ensure_future(count_frames(track, counts)))

    await peer.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
    peer.pc.addTrack(peer.audio)
    peer.pc.addTrack(PrecodedVideo(frames))
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    (await http.post(f"{peer.gateway}/v1/rooms/{peer.room}/peers/{peer.pid}/answer",
                     json={"sdp": peer.pc.localDescription.sdp})).raise_for_status()


async def count_frames(track: MediaStreamTrack, counts: Counter[str]) -> None:
    """Count the (undecoded: :func:`install_receivers`) frames of ``track`` in
    ``counts[track.id]`` until it ends."""
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while time.monotonic() < deadline:
            await track.recv()  # an av.Packet: install_receivers() skips decoding
            counts[track.id] += 1


# Runs the gateway's console script on the event loop asked for, whatever uvicorn would pick.
_LOOP_WRAPPER = """import sys, uvicorn.config as c
want = c.LOOP_FACTORIES[sys.argv[1]]
for key in ("auto", "asyncio", "uvloop"):
    c.LOOP_FACTORIES[key] = want
from jbcalling.gateway.__main__ import main
main()
"""


def start_gateway(redis_url: str, log: Path, loop: str | None) -> tuple[subprocess.Popen[bytes],
                                                                          str]:
    """A jb-gateway process on loopback; ``loop``: "uvloop" or "asyncio" (None: its default).
    Forwarding alone: no stt to stream the speech taps to (gateway_proc points it at no Consul);
    the taps still decode every speaker's audio."""
    command = [sys.executable, "-c", _LOOP_WRAPPER, loop] if loop else None
    try:
        return gateway_proc.start_gateway(redis_url, log, command=command, log_level="warning")
    except gateway_proc.NotReady as exc:
        raise SystemExit(f"jb-gateway did not become ready: {exc}") from exc


def _print_run(label: str, r: dict[str, Any]) -> None:
    print(f"{label}: gateway {r['gateway_core_fraction'] * 100:.1f} % of a core for "
          f"{r['streams']} streams = {r['cpu_s_per_stream_s']:.4f} CPU-s per stream-s; "
          f"received {r['frames_received_per_s']} of {r['expected_per_s']} frames/s (per stream "
          f"min {r['fps_per_stream_min']}, median {r['fps_per_stream_median']}); gateway sent "
          f"{r['gateway_datagrams_sent_per_s']} datagrams/s ({r['gateway_cpu_us_per_datagram']} "
          f"CPU-us each); receiver drops "
          f"{r['receiver_drops']}; video encoders started {r['video_encoders_started']}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare-uvloop", action="store_true",
                        help="alternate runs on uvloop and on asyncio's own loop")
    args = parser.parse_args()
    participants = max(2, min(args.participants, 6))
    ice.use_host_addresses(["127.0.0.1"])
    install_receivers()  # receivers count encoded frames; this process decodes no video
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
    loops: list[str | None] = ["uvloop", "asyncio"] if args.compare_uvloop else [None]
    runs: dict[str, list[dict[str, Any]]] = {str(loop): [] for loop in loops}
    try:
        for i in range(max(1, min(args.runs, 10))):
            for loop in loops:  # alternating: the machine's load hits both alike
                gw, gateway = start_gateway(redis_url, tmp / f"gateway-{loop}.log", loop)
                try:
                    r = asyncio.run(one_run(gateway, gw.pid, participants, args.seconds, frames))
                finally:
                    gateway_proc.stop(gw)
                runs[str(loop)].append(r)
                _print_run(f"run {i + 1}" + (f" ({loop})" if loop else ""), r)
    finally:
        if redis_proc:
            redis_proc.terminate()
    out = HERE / "results" / ("gateway_forwarding_uvloop.json" if args.compare_uvloop
                              else "gateway_forwarding.json")
    out.parent.mkdir(exist_ok=True)
    common = {"participants": participants, "seconds": args.seconds,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "cpus": os.cpu_count(),
              "note": "senders send precoded 720p30 VP8 (about 1.3 Mbit/s) and receivers do not "
                      "decode; the gateway's CPU is its own (/proc utime+stime); receiver drops "
                      "are the whole machine's UDP RcvbufErrors in the window"}
    if args.compare_uvloop:
        med = {loop: statistics.median(r["cpu_s_per_stream_s"] for r in rs)
               for loop, rs in runs.items()}
        per_dgram = {loop: statistics.median(r["gateway_cpu_us_per_datagram"] or 0 for r in rs)
                     for loop, rs in runs.items()}
        result = {**common, "runs": runs, "median_cpu_s_per_stream_s": med,
                  "median_cpu_us_per_datagram": per_dgram,
                  "ratio_uvloop_to_asyncio": round(med["uvloop"] / med["asyncio"], 3),
                  "ratio_uvloop_to_asyncio_per_datagram": round(
                      per_dgram["uvloop"] / per_dgram["asyncio"], 3) if per_dgram["asyncio"]
                  else None}
        out.write_text(json.dumps(result, indent=2))
        print(f"median CPU-s per stream-s: uvloop {med['uvloop']:.4f}, asyncio "
              f"{med['asyncio']:.4f}, ratio {result['ratio_uvloop_to_asyncio']}; CPU-us per "
              f"datagram sent: uvloop {per_dgram['uvloop']}, asyncio {per_dgram['asyncio']}, "
              f"ratio {result['ratio_uvloop_to_asyncio_per_datagram']}; saved {out}")
        return
    rs = runs["None"]
    per_stream = statistics.median(r["cpu_s_per_stream_s"] for r in rs)
    at_30 = [r["core_per_stream_at_30fps"] for r in rs if r["core_per_stream_at_30fps"]]
    per_stream_30 = statistics.median(at_30) if at_30 else None
    room = statistics.median(r["gateway_core_fraction"] for r in rs)
    result = {**common, "runs": rs, "median_gateway_core_fraction": room,
              "median_core_per_stream": per_stream,
              "median_core_per_stream_at_30fps": per_stream_30,
              "median_fps_per_stream_min": statistics.median(r["fps_per_stream_min"] for r in rs),
              "median_datagrams_sent_per_s": statistics.median(
                  r["gateway_datagrams_sent_per_s"] for r in rs),
              "median_cpu_us_per_datagram": statistics.median(
                  r["gateway_cpu_us_per_datagram"] or 0 for r in rs),
              "median_receiver_drops": statistics.median(r["receiver_drops"] for r in rs),
              "projected_30_streams_core_fraction": round((per_stream_30 or per_stream) * 30, 3),
              "target_30_streams_core_fraction": 0.5,
              "met": (per_stream_30 or per_stream) * 30 <= 0.5}
    out.write_text(json.dumps(result, indent=2))
    print(f"median: gateway {room * 100:.1f} % of a core for {participants * (participants - 1)} "
          f"streams; {per_stream:.4f} CPU-s per stream-s ({(per_stream_30 or 0):.4f} at a full "
          f"30 fps); 30 streams -> {result['projected_30_streams_core_fraction'] * 100:.0f} % "
          f"(target <= 50 %); load average {load_before} -> {result['loadavg_after']}; saved {out}")


if __name__ == "__main__":
    main()
