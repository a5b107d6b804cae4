"""Benchmark: the jb-gateway against Janus (Debian's C SFU), same load, same network set-up.

N participants (default 4 and 6) each send the precoded 720p30 VP8 stream of
benchmarks/gateway_forwarding.py (plus silence as Opus) and receive every other participant's
video with its non-decoding receivers, which count frames per stream. Both SFUs run alone in a
network namespace that this benchmark creates (a veth pair on a private /30; Janus 1.1.2 skips
loopback for ICE), the gateway with a throwaway redis-server beside it; the clients run here, in
the root namespace. Runs alternate (gateway, Janus, gateway, ...) and each starts a fresh SFU.

Per run, over a window after a warm-up: frames/s per stream counted at the receivers (median,
min), datagrams the SFU sent (its namespace's Udp OutDatagrams), drops at the receiving sockets
(root namespace's Udp RcvbufErrors: anything else on the machine adds to them), the SFU
process's CPU (utime+stime) per stream-second; then the median ratio gateway / Janus.

    .venv/bin/python benchmarks/gateway_vs_janus.py [--participants 4 6] [--seconds 30]
        [--runs 3] [--label NAME] [--gateway-commit REV]

Needs root (network namespace), iproute2, redis-server; installs Janus with apt when missing.
Saves benchmarks/results/gateway_vs_janus[-NAME].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gateway_forwarding as gf
import httpx
import janus_sfu
import sfu_stats
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from sfu_netns import Netns, root_snmp

from jbcalling.client import SyntheticPeer
from jbcalling.gateway import ice

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GATEWAY_PORT = 8090
ROOM = 4242


class Load:
    """Frame counters per stream (receiver <- sender) and everything to close after a run."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}
        self.pcs: list[RTCPeerConnection] = []
        self.peers: list[SyntheticPeer] = []

    def receive(self, stream: str, track: MediaStreamTrack) -> asyncio.Task[None]:
        self.counts[stream] = Counter()  # one Counter per stream: track ids need not be unique
        return asyncio.ensure_future(gf.count_frames(track, self.counts[stream]))

    def totals(self) -> dict[str, int]:
        return {k: sum(c.values()) for k, c in self.counts.items()}

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        for pc in self.pcs:
            await pc.close()


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def gateway_load(base: str, n: int, frames: list[bytes], load: Load) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(n):
            peer = SyntheticPeer(base, "benchroom", f"bench{i:03d}", camera=False)
            load.peers.append(peer)
            resp = await http.post(f"{base}/v1/rooms/benchroom/peers/{peer.pid}/offer")
            if resp.is_error:
                raise SystemExit(f"gateway offer: {resp.status_code} {resp.text[:500]}")

            def on_track(track: MediaStreamTrack, peer: SyntheticPeer = peer) -> None:
                if track.kind == "video":
                    mid = next(t.mid for t in peer.pc.getTransceivers() if t.receiver.track is track)
                    peer.tasks.append(load.receive(f"{peer.pid}<-mid{mid}", track))

            peer.pc.on("track", on_track)
            await peer.pc.setRemoteDescription(RTCSessionDescription(resp.json()["sdp"], "offer"))
            peer.pc.addTrack(peer.audio)
            peer.pc.addTrack(gf.PrecodedVideo(frames))
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
            (await http.post(f"{base}/v1/rooms/benchroom/peers/{peer.pid}/answer",
                             json={"sdp": peer.pc.localDescription.sdp})).raise_for_status()


async def janus_load(client: janus_sfu.JanusClient, n: int, frames: list[bytes], load: Load) -> None:
    admin = await client.attach()
    await client.request(admin, {"request": "create", "room": ROOM, "publishers": n,
                                 "bitrate": 0, "fir_freq": 0, "audiocodec": "opus",
                                 "videocodec": "vp8", "notify_joining": False})
    feeds = []
    for i in range(n):
        pc = _pc()
        load.pcs.append(pc)
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(gf.PrecodedVideo(frames))
        await pc.setLocalDescription(await pc.createOffer())
        handle = await client.attach()
        joined = await client.request(handle, {"request": "join", "ptype": "publisher",
                                               "room": ROOM, "display": f"bench{i:03d}"})
        feeds.append(joined["plugindata"]["data"]["id"])
        reply = await client.request(handle, {"request": "publish", "audio": True, "video": True},
                                     jsep={"type": "offer", "sdp": pc.localDescription.sdp,
                                           "trickle": False})
        await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "answer"))
    # Janus lists a feed for subscribers once its publisher's connection is up.
    deadline = time.monotonic() + 60
    while any(pc.connectionState != "connected" for pc in load.pcs):
        if time.monotonic() > deadline:
            raise SystemExit("Janus: publishers not connected within 60 s: "
                             f"{[pc.connectionState for pc in load.pcs]}")
        await asyncio.sleep(0.2)
    for i in range(n):
        for j, feed in enumerate(feeds):
            if i != j:
                await _janus_subscribe(client, load, f"bench{i:03d}<-bench{j:03d}", feed)


async def _janus_subscribe(client: janus_sfu.JanusClient, load: Load, stream: str, feed: int) -> None:
    pc = _pc()
    load.pcs.append(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        # Janus gives every subscriber track the same stream id: one connection = one stream.
        if track.kind == "video":
            load.receive(stream, track)

    handle = await client.attach()
    offer = await client.request(handle, {"request": "join", "ptype": "subscriber", "room": ROOM,
                                          "streams": [{"feed": feed}]})
    await pc.setRemoteDescription(RTCSessionDescription(offer["jsep"]["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await client.request(handle, {"request": "start", "room": ROOM},
                         jsep={"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False})


async def measure(sfu: str, pid: int, ns: Netns, n: int, load: Load,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Waits until every stream delivers (bounded), warms up, then measures one window."""
    streams = n * (n - 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(1 for v in load.totals().values() if v) >= streams:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(args.warmup)

    def snapshot() -> tuple[Any, ...]:
        return ns.snmp(), root_snmp(), load.totals(), gf.cpu_seconds(pid), time.monotonic()

    snmp0, root0, counts0, cpu0, t0 = snapshot()
    await asyncio.sleep(args.seconds)
    snmp1, root1, counts1, cpu1, t1 = snapshot()
    fps = sfu_stats.stream_fps(counts0, counts1, t1 - t0)
    fps += [0.0] * (streams - len(fps))  # a stream that never produced a track delivered nothing
    return sfu_stats.run_figures(sfu=sfu, participants=n, seconds=t1 - t0, cpu_s=cpu1 - cpu0,
                                 fps=fps, sfu_udp=sfu_stats.udp_delta(snmp0, snmp1),
                                 receiver_udp=sfu_stats.udp_delta(root0, root1))


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within 60 s: {log.read_text(errors='replace')[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def one_run(sfu: str, n: int, ns: Netns, tmp: Path, frames: list[bytes], gateway_env: dict[str, str],
            args: argparse.Namespace) -> dict[str, Any]:
    log = tmp / f"{sfu}.log"
    if sfu == "janus":
        config = janus_sfu.write_config(tmp / "janus", ns.inner_ip, ns.inner_if)
        argv, base = janus_sfu.command(config), f"http://{ns.inner_ip}:{janus_sfu.PORT}/janus"
        ready, env = base + "/info", None
    else:
        argv, base = [str(Path(sys.executable).parent / "jb-gateway")], f"http://{ns.inner_ip}:{GATEWAY_PORT}"
        # room size = N: the gateway offers N - 1 subscriber slots, like Janus's N - 1 feeds
        ready, env = base + "/ready", {**gateway_env, "JB_GATEWAY_MAX_PEERS": str(n)}
    proc = subprocess.Popen(ns.command(argv), env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_http(ready, proc, log, sfu)

        async def go() -> dict[str, Any]:
            load = Load()
            client = janus_sfu.JanusClient(base) if sfu == "janus" else None
            try:
                if client:
                    await client.open()
                    await janus_load(client, n, frames, load)
                else:
                    await gateway_load(base, n, frames, load)
                return await measure(sfu, proc.pid, ns, n, load, args)
            finally:
                await load.close()
                if client:
                    await client.close()

        return asyncio.run(go())
    except Exception:
        print(f"{sfu} log (last 3000 characters):\n{log.read_text(errors='replace')[-3000:]}",
              file=sys.stderr)
        raise
    finally:
        stop(proc)
        if sfu == "janus":
            subprocess.run(["rm", "-rf", str(tmp / "janus")], check=False)


def gateway_source(rev: str, tmp: Path) -> tuple[str, dict[str, str]]:
    """Which gateway code runs: the checkout's (commit + whether services/ has changes), or
    ``rev``'s services/ extracted with git archive (PYTHONPATH wins over the editable install)."""
    git = ["git", "-C", str(ROOT)]
    if not rev:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "services"], capture_output=True,
                               text=True).stdout.strip()
        return head + (" + uncommitted changes in services/" if dirty else ""), {}
    commit = subprocess.run([*git, "rev-parse", rev], check=True, capture_output=True,
                            text=True).stdout.strip()
    src = tmp / "gateway-src"
    src.mkdir()
    archive = subprocess.run([*git, "archive", commit, "services"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return commit, {"PYTHONPATH": str(src / "services")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[4, 6])
    parser.add_argument("--seconds", type=float, default=30, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=5, help="after every stream delivers")
    parser.add_argument("--runs", type=int, default=3, help="runs per SFU and room size")
    parser.add_argument("--label", default="", help="saved as gateway_vs_janus-LABEL.json")
    parser.add_argument("--gateway-commit", default="", help="run the gateway of this git "
                        "revision (default: the checkout as it is)")
    parser.add_argument("--subnet", default="10.213.0.0/30", help="private /30 for the veth pair")
    parser.add_argument("--netns", default="jb-sfubench", help="network namespace name")
    parser.add_argument("--only", choices=["gateway", "janus"], help="measure one SFU (no ratio)")
    args = parser.parse_args()
    if any(not 2 <= n <= 6 for n in args.participants):
        raise SystemExit("--participants: room sizes from 2 to 6 (the gateway's default max_peers)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    janus_sfu.ensure_installed()
    janus_version = subprocess.run([janus_sfu.JANUS, "--version"], capture_output=True,
                                   text=True).stdout.splitlines()[0]
    gf.install_receivers()  # this process's receivers count encoded frames, never decode
    frames = gf.precode()
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jb-vs-janus-") as tmp_s, \
            Netns(args.netns, args.subnet) as ns:
        tmp = Path(tmp_s)
        ice.use_host_addresses([ns.host_ip])  # the clients offer only the veth address
        measured, src_env = gateway_source(args.gateway_commit, tmp)
        redis = subprocess.Popen(ns.command(["redis-server", "--bind", "127.0.0.1", "--port", "6379",
                                             "--save", "", "--dir", str(tmp)]), stdout=subprocess.DEVNULL)
        gateway_env = {**os.environ, **src_env, "JB_GATEWAY_HOST": ns.inner_ip,
                       "JB_GATEWAY_PORT": str(GATEWAY_PORT),
                       "JB_GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
                       "JB_GATEWAY_ICE_ADDRESSES": json.dumps([ns.inner_ip]),
                       "JB_GATEWAY_LOG_LEVEL": "warning",
                       # forwarding alone: no stt to stream the speech taps to
                       "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1"}
        try:
            for n in args.participants:
                for i in range(max(1, args.runs)):
                    for sfu in [args.only] if args.only else ["gateway", "janus"]:
                        r = one_run(sfu, n, ns, tmp, frames, gateway_env, args)
                        r["loadavg_1m"] = round(os.getloadavg()[0], 2)
                        runs.append(r)
                        print(f"{n} participants, run {i + 1}, {sfu}: {r['fps_median']:.1f} fps "
                              f"median ({r['fps_min']:.1f} min) over {r['streams']} streams, "
                              f"{r['sfu_datagrams_per_s']:.0f} datagrams/s, "
                              f"{r['receiver_drops']} receiver drops, "
                              f"{r['cpu_s_per_stream_s']:.5f} CPU-s per stream-s", flush=True)
        finally:
            stop(redis)
    summary = [sfu_stats.ratios(runs, n) for n in args.participants]
    result = {"gateway": measured, "janus": janus_version, "participants": args.participants,
              "seconds": args.seconds, "warmup": args.warmup, "loadavg_start": load_start,
              "loadavg_end": os.getloadavg(), "cpus": os.cpu_count(), "runs": runs,
              "ratios": summary,
              "targets": {"cpu_ratio_at_6": 2.0, "fps_per_stream": 30,
                          "datagram_ratio": 1.1, "receiver_drops": 0},
              "note": "receiver drops are the root namespace's Udp RcvbufErrors over the window: "
                      "other traffic on the machine adds to them"}
    out = HERE / "results" / f"gateway_vs_janus{'-' + args.label if args.label else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(sfu_stats.table(runs))
    for s in summary:
        print(f"{s['participants']} participants: gateway / Janus CPU-s per stream-second "
              f"{s['cpu_ratio']} (target <= 2.0 at 6), datagrams/s {s['datagram_ratio']} "
              f"(target <= 1.1)")
    print(f"gateway {measured}; {janus_version}; load average {load_start} at start, "
          f"{result['loadavg_end']} at end; receiver drops count all of this namespace's UDP "
          f"(other traffic on the machine adds to them); saved {out}")


if __name__ == "__main__":
    main()
