"""Benchmark: the jb-gateway against Janus (Debian's C SFU), same load, same network set-up.

N participants (default 4 and 6) each send the precoded 720p30 VP8 stream of
benchmarks/gateway_forwarding.py (plus silence as Opus) and receive every other participant's
video with its non-decoding receivers, which count frames per stream. Both SFUs run alone in a
network namespace, the participants in another, joined by a veth pair on a private /30 (Janus
1.1.2 skips loopback for ICE; benchmarks/sfu_netns.py), the gateway with a throwaway
redis-server beside it; the participants in worker processes (benchmarks/sfu_clients.py).
Runs alternate (gateway, Janus, gateway, ...); each starts a fresh SFU and fresh participants.

Per run, over a window after a warm-up: frames/s per stream counted at the receivers (median,
min), datagrams the SFU sent (its namespace's Udp OutDatagrams), drops at the receiving sockets
(the clients' namespace's Udp RcvbufErrors: only the benchmark's sockets), the SFU
process's CPU (utime+stime) per stream-second; then the median ratio gateway / Janus.

    .venv/bin/python benchmarks/gateway_vs_janus.py [--participants 4 6] [--seconds 30]
        [--runs 3] [--label NAME] [--gateway-commit REV [REV ...]] [--client-processes 2]
        [--client-nice 0]

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
from pathlib import Path
from typing import Any

import gateway_forwarding as gf
import httpx
import janus_sfu
import sfu_bursts
import sfu_clients
import sfu_stats
from gateway_proc import stop, wait_http
from sfu_clients import Clients
from sfu_netns import Netns, own_snmp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GATEWAY_PORT = 8090


def measure(sfu: str, pid: int, ns: Netns, n: int, clients: Clients,
            args: argparse.Namespace, metrics: str = "") -> dict[str, Any]:
    """Waits until every stream delivers (bounded), warms up, then measures one window; with
    ``metrics`` (the gateway's /metrics) also what its own counters counted meanwhile."""
    streams = n * (n - 1)

    def own_counters() -> dict[str, float]:
        try:
            return sfu_stats.counters(httpx.get(metrics, timeout=10).text) if metrics else {}
        except httpx.HTTPError:  # its own account is extra: the run stands without it
            return {}

    def snapshot() -> tuple[Any, ...]:
        snmp, root, cpu = ns.snmp(), own_snmp(), gf.cpu_seconds(pid)
        parts = clients.call([("snapshot",)] * len(clients.conns))
        counts = {k: v for part in parts for k, v in part[0].items()}
        sent = [x for part in parts for x in part[1]]
        return snmp, root, counts, sent, cpu, sum(part[2] for part in parts), time.monotonic()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for v in snapshot()[2].values() if v) < 2 * streams:
        time.sleep(0.5)
    time.sleep(args.warmup)
    snmp0, root0, counts0, sent0, cpu0, me0, t0 = snapshot()
    own0 = own_counters()
    # the first seconds of the window, recorded where the participants receive
    bursts = sfu_bursts.record(ns.host_if, ns.host_ip, min(args.bursts, args.seconds)) \
        if args.bursts else {}
    time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
    snmp1, root1, counts1, sent1, cpu1, me1, t1 = snapshot()
    own1 = own_counters()
    video1 = {k: v for k, v in counts1.items() if not k.endswith("#audio")}
    audio1 = {k: v for k, v in counts1.items() if k.endswith("#audio")}
    fps = sfu_stats.stream_fps(counts0, video1, t1 - t0)
    fps += [0.0] * (streams - len(fps))  # a stream that never produced a track delivered nothing
    audio_fps = sfu_stats.stream_fps(counts0, audio1, t1 - t0)
    audio_fps += [0.0] * (streams - len(audio_fps))
    figures = sfu_stats.run_figures(
        sfu=sfu, participants=n, seconds=t1 - t0, cpu_s=cpu1 - cpu0, fps=fps,
        sfu_udp=sfu_stats.udp_delta(snmp0, snmp1), receiver_udp=sfu_stats.udp_delta(root0, root1),
        sender_fps=[(b - a) / (t1 - t0) for a, b in zip(sent0, sent1, strict=True)],
        client_cpu_s=me1 - me0, audio_fps=audio_fps)
    if bursts:
        figures["bursts"] = bursts
    if own1:  # the gateway's own account of the window, per second (saved, not printed)
        figures["gateway_counters_per_s"] = {k: round((v - own0.get(k, 0)) / (t1 - t0), 1)
                                             for k, v in own1.items() if v != own0.get(k, 0)}
    return figures


def one_run(sfu: str, n: int, ns: Netns, tmp: Path, frames: list[bytes],
            gateway_env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """A fresh SFU in the namespace, the participants in fresh worker processes, one window."""
    log = tmp / f"{sfu}.log"
    if sfu == "janus":
        config = janus_sfu.write_config(tmp / "janus", ns.inner_ip, ns.inner_if)
        argv, base = janus_sfu.command(config), f"http://{ns.inner_ip}:{janus_sfu.PORT}/janus"
        ready, env = base + "/info", None
    else:
        argv = [str(Path(sys.executable).parent / "jb-gateway")]
        base = f"http://{ns.inner_ip}:{GATEWAY_PORT}"
        # room size = N: the gateway offers N - 1 subscriber slots, like Janus's N - 1 feeds
        ready, env = base + "/ready", {**gateway_env, "JB_GATEWAY_MAX_PEERS": str(n)}
    proc = subprocess.Popen(ns.command(argv), env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_http(ready, proc, log, sfu)

        clients = Clients(args.client_processes, ns.host_ip, frames, args.client_nice)
        try:
            share = clients.share(n)
            if sfu == "janus":
                asyncio.run(sfu_clients.janus_room(base, n))
                parts = clients.call([("janus_publish", base, idx) for idx in share])
                feeds = {i: feed for part in parts for i, feed in part.items()}
                per_feed = args.janus_subscriber == "per-feed"
                clients.call([("janus_subscribe", idx, feeds, per_feed) for idx in share])
            else:
                clients.call([("gateway", base, idx) for idx in share])
            return measure(sfu, proc.pid, ns, n, clients, args,
                           "" if sfu == "janus" else base + "/metrics")
        finally:
            clients.close()
    except Exception:
        print(f"{sfu} log (last 3000 characters):\n{log.read_text(errors='replace')[-3000:]}",
              file=sys.stderr)
        raise
    finally:
        stop(proc)
        if sfu == "janus":
            subprocess.run(["rm", "-rf", str(tmp / "janus")], check=False)


def gateway_sources(revs: list[str], tmp: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """The gateways to run, by name: "gateway" the checkout as it is (its commit, and whether
    services/ has changes), or "gateway@REV" for each revision given, its services/ extracted
    with git archive (PYTHONPATH comes before the editable install). Values: (what, env)."""
    git = ["git", "-C", str(ROOT)]
    if not revs:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "services"], capture_output=True,
                               text=True).stdout.strip()
        return {"gateway": (head + (" + uncommitted changes in services/" if dirty else ""), {})}
    out = {}
    for rev in revs:
        commit = subprocess.run([*git, "rev-parse", rev], check=True, capture_output=True,
                                text=True).stdout.strip()
        src = tmp / f"gateway-{commit}"
        src.mkdir(exist_ok=True)
        archive = subprocess.run([*git, "archive", commit, "services"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        out[f"gateway@{rev}"] = (commit, {"PYTHONPATH": str(src / "services")})
    return out


def with_settings(gateways: dict[str, tuple[str, dict[str, str]]],
                  settings: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each gateway once per ``settings`` entry ("VAR=VALUE,VAR=VALUE"), named
    "gateway[VAR=VALUE,...]"; no entries: the gateways as they are."""
    if not settings:
        return gateways
    out = {}
    for setting in settings:
        pairs = [p.partition("=") for p in setting.split(",")]
        if any(not var or sep != "=" for var, sep, _ in pairs):
            raise SystemExit(f"--gateway-env {setting!r}: write VAR=VALUE[,VAR=VALUE]")
        extra = {var: value for var, _, value in pairs}
        for name, (what, env) in gateways.items():
            out[f"{name}[{setting}]"] = (f"{what} with {setting}", {**env, **extra})
    return out


def report(r: dict[str, Any], i: int) -> None:
    print(f"{r['participants']} participants, run {i + 1}, {r['sfu']}: {r['fps_median']:.1f} fps "
          f"median ({r['fps_min']:.1f} min) over {r['streams']} streams, "
          f"{r['sfu_datagrams_per_s']:.0f} datagrams/s, {r['receiver_drops']} receiver drops, "
          f"{r['cpu_s_per_stream_s']:.5f} CPU-s per stream-s; sources sent >= "
          f"{r['sender_fps_min']:.1f} fps, clients used {r['client_core_fraction']:.2f} of a core",
          flush=True)
    b = r.get("bursts")
    if b and b.get("sockets"):
        print(f"  bursts at the participants' sockets ({b['sockets']} sockets, {b['seconds']} s): "
              f"most datagrams in 1 ms {b['max_in_1ms_median']:.0f} median, "
              f"{b['max_in_1ms_worst']} worst; in 10 ms {b['max_in_10ms_median']:.0f} median, "
              f"{b['max_in_10ms_worst']} worst (mean {b['mean_per_10ms']} per 10 ms); "
              f"tcpdump: {b['tcpdump']}", flush=True)
    used = r["client_core_fraction"] + r["cpu_core_fraction"]
    if used > 0.9 * (os.cpu_count() or 1):
        print(f"  SFU and clients used {used:.2f} of {os.cpu_count()} cores: the machine, not "
              "the SFU, may limit this run's frame rates", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[4, 6])
    parser.add_argument("--seconds", type=float, default=30, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=5, help="after every stream delivers")
    parser.add_argument("--runs", type=int, default=3, help="runs per SFU and room size")
    parser.add_argument("--label", default="", help="saved as gateway_vs_janus-LABEL.json")
    parser.add_argument("--gateway-commit", nargs="+", default=[], metavar="REV",
                        help="run the gateway of these git revisions, each in turn, instead of "
                        "the checkout as it is (e.g. a before and an after)")
    parser.add_argument("--gateway-env", nargs="+", default=[], metavar="VAR=VALUE[,VAR=VALUE]",
                        help="run each gateway once per setting given, in turn, with those "
                        "environment variables (e.g. JB_GATEWAY_PACING_BURST=0 "
                        "JB_GATEWAY_PACING_BURST=8): settings compared in one run")
    parser.add_argument("--subnet", default="10.213.0.0/30", help="private /30 for the veth pair")
    parser.add_argument("--netns", default="jb-sfubench", help="network namespace name")
    parser.add_argument("--client-processes", type=int, default=2, help="worker processes "
                        "the participants are spread over (one cannot receive 30 streams)")
    parser.add_argument("--client-nice", type=int, default=0, choices=range(0, 20),
                        metavar="0-19", help="niceness of the participants' workers: with 10, "
                        "the SFU measured (either one) gets the CPU first, as on a media node "
                        "that does not also run its participants")
    parser.add_argument("--bursts", type=float, default=0, metavar="SECONDS",
                        help="record this many seconds at the start of each window with tcpdump "
                        "(installed with apt when missing) and print the largest bursts per "
                        "participant socket (benchmarks/sfu_bursts.py); the capture adds to the SFU's "
                        "CPU: take CPU figures from runs without it")
    parser.add_argument("--janus-subscriber", choices=["per-feed", "one"], default="per-feed",
                        help="Janus subscribers: a connection per remote feed, or one for all "
                        "(multistream, one socket per participant like the gateway)")
    parser.add_argument("--only", choices=["gateway", "janus"], help="measure one SFU (no ratio)")
    args = parser.parse_args()
    if any(not 2 <= n <= 6 for n in args.participants):
        raise SystemExit("--participants: room sizes from 2 to 6 (the gateway's default max_peers)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    janus_sfu.ensure_installed()
    if args.bursts:
        sfu_bursts.ensure_installed()
    janus_version = subprocess.run([janus_sfu.JANUS, "--version"], capture_output=True,
                                   text=True).stdout.splitlines()[0]
    frames = gf.precode()
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jb-vs-janus-") as tmp_s, \
            Netns(args.netns, args.subnet) as ns:
        tmp = Path(tmp_s)
        ns.enter_clients()  # before any socket: the participants' sockets live there
        gateways = with_settings(gateway_sources(args.gateway_commit, tmp), args.gateway_env)
        redis = subprocess.Popen(ns.command(["redis-server", "--bind", "127.0.0.1", "--port", "6379",
                                             "--save", "", "--dir", str(tmp)]), stdout=subprocess.DEVNULL)
        base_env = {**os.environ, "JB_GATEWAY_HOST": ns.inner_ip,
                    "JB_GATEWAY_PORT": str(GATEWAY_PORT),
                    "JB_GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/0",
                    "JB_GATEWAY_ICE_ADDRESSES": json.dumps([ns.inner_ip]),
                    "JB_GATEWAY_LOG_LEVEL": "warning",
                    # forwarding alone: no stt to stream the speech taps to
                    "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1"}
        sfus = [*([] if args.only == "janus" else gateways),
                *([] if args.only == "gateway" else ["janus"])]
        try:
            for n in args.participants:
                for i in range(max(1, args.runs)):
                    for sfu in sfus:  # alternating: the machine's load falls on each alike
                        env = {**base_env, **gateways[sfu][1]} if sfu in gateways else {}
                        r = one_run(sfu, n, ns, tmp, frames, env, args)
                        r["loadavg_1m"] = round(os.getloadavg()[0], 2)
                        runs.append(r)
                        report(r, i)
        finally:
            stop(redis)
    summary = [sfu_stats.ratios(runs, n, g) for n in args.participants for g in gateways]
    result = {"gateways": {g: what for g, (what, _) in gateways.items()}, "janus": janus_version,
              "participants": args.participants, "seconds": args.seconds, "warmup": args.warmup,
              "client_processes": args.client_processes, "client_nice": args.client_nice,
              "janus_subscriber": args.janus_subscriber, "loadavg_start": load_start,
              "loadavg_end": os.getloadavg(), "cpus": os.cpu_count(), "runs": runs,
              "ratios": summary,
              "targets": {"cpu_ratio_at_6": 2.0, "fps_per_stream": 30,
                          "datagram_ratio": 1.1, "receiver_drops": 0},
              "note": "receiver drops: Udp RcvbufErrors of the clients' own network namespace "
                      "over the window (only the benchmark's sockets)"}
    out = HERE / "results" / f"gateway_vs_janus{'-' + args.label if args.label else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(sfu_stats.table(runs))
    for s in summary:
        print(f"{s['participants']} participants: {s['gateway']} / Janus CPU-s per stream-second "
              f"{s['cpu_ratio']} (target <= 2.0 at 6; per frame received "
              f"{s['cpu_per_frame_ratio']}), datagrams/s {s['datagram_ratio']} (target <= 1.1)")
    for g, (what, _) in gateways.items():
        print(f"{g}: {what}")
    print(f"{janus_version}; load average {load_start} at start, {result['loadavg_end']} at end; "
          f"saved {out}")


if __name__ == "__main__":
    main()
