"""How bursty an SFU's sending is, seen where the participants receive it (benchmarks/
gateway_vs_janus.py ``--bursts``).

tcpdump (Debian's, installed with apt by the benchmark when missing; never a product
dependency) records for a few seconds the first 64 bytes of every UDP datagram that reaches the
participants' end of the veth pair, with nanosecond timestamps. A veth delivers a datagram in
the sender's own system call, so these are the times the SFU sent them. Per destination socket
(a participant's peer connection): the most datagrams inside any 1 ms and any 10 ms, compared
with the mean per 10 ms. A receiving socket's buffer (Linux's default 208 KiB, each datagram
of about 1.2 KB charged at its kernel buffer's size, about 2.3 KiB: an estimate, some 90
datagrams) overflows when a burst is that large, or when its receiver is not scheduled for
longer than the buffer lasts.

The capture can add to the SFU's CPU time: a veth usually delivers a datagram in the
sender's own system call, and with a capture running that includes copying it for tcpdump.
Take CPU figures from runs without ``--bursts``.
"""

from __future__ import annotations

import statistics
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import debian_tool

TCPDUMP = "/usr/bin/tcpdump"
PCAP_NANO_MAGIC = 0xA1B23C4D
ETHERNET = 1


def ensure_installed() -> None:
    debian_tool.ensure(TCPDUMP, "tcpdump")


def record(interface: str, to_ip: str, seconds: float) -> dict[str, Any]:
    """Records UDP to ``to_ip`` arriving on ``interface`` (this process's network namespace)
    for ``seconds``: :func:`figures` of it, tcpdump's summary (datagrams captured, dropped by
    the kernel) and the seconds."""
    with tempfile.TemporaryDirectory(prefix="jb-bursts-") as folder:
        pcap = Path(folder) / "sfu.pcap"
        proc = subprocess.Popen(
            [TCPDUMP, "-i", interface, "-n", "-s", "64", "-B", "16384", "-w", str(pcap),
             "--time-stamp-precision=nano", "-Q", "in", f"udp and dst host {to_ip}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(seconds)
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        summary = " ".join(line for line in err.decode(errors="replace").splitlines()
                           if "packets" in line)
        return {**(figures(pcap) if pcap.exists() else {}), "tcpdump": summary,
                "seconds": seconds}


def arrivals(pcap: Path) -> dict[int, list[int]]:
    """Nanosecond arrival times per destination UDP port, from a nanosecond pcap of Ethernet."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return {}
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data, 0)
    if magic != PCAP_NANO_MAGIC or link != ETHERNET:
        raise ValueError(f"{pcap}: not a nanosecond Ethernet pcap (magic {magic:#x}, link {link})")
    out: dict[int, list[int]] = defaultdict(list)
    at = 24
    while at + 16 <= len(data):
        sec, nsec, caplen, _ = struct.unpack_from("<IIII", data, at)
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ip_header = (frame[14] & 0x0F) * 4
        port = struct.unpack_from("!H", frame, 14 + ip_header + 2)[0]
        out[port].append(sec * 1_000_000_000 + nsec)
    return out


def most_within(times: list[int], window_ns: int) -> int:
    """The most of ``times`` (sorted) inside any window of ``window_ns``."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_ns:
            first += 1
        best = max(best, last - first + 1)
    return best


def figures(pcap: Path) -> dict[str, float]:
    """Per destination socket, then the median and the worst over the sockets."""
    per_port = {p: sorted(t) for p, t in arrivals(pcap).items() if len(t) >= 100}
    if not per_port:
        return {}
    in_1ms = [most_within(t, 1_000_000) for t in per_port.values()]
    in_10ms = [most_within(t, 10_000_000) for t in per_port.values()]
    mean_10ms = [len(t) / max(1e-9, (t[-1] - t[0]) / 10_000_000) for t in per_port.values()]
    return {"sockets": len(per_port),
            "max_in_1ms_median": statistics.median(in_1ms), "max_in_1ms_worst": max(in_1ms),
            "max_in_10ms_median": statistics.median(in_10ms), "max_in_10ms_worst": max(in_10ms),
            "mean_per_10ms": round(statistics.median(mean_10ms), 1)}
