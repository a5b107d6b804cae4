"""The burst figures of benchmarks/gateway_vs_janus.py --bursts (benchmarks/sfu_bursts.py):
the pcap it reads and the most datagrams in a window."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

# appended, not prepended: a benchmark's module never shadows a test helper of the same name
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import sfu_bursts

pytestmark = pytest.mark.unit


def _frame(port: int) -> bytes:
    """Ethernet, IPv4 (20 bytes), UDP to ``port``, cut at 64 bytes as tcpdump -s 64 does."""
    ip = bytes([0x45, 0]) + struct.pack("!H", 1228) + bytes(5) + bytes([17]) + bytes(10)
    udp = struct.pack("!HHHH", 40000, port, 1208, 0)
    return (bytes(12) + b"\x08\x00" + ip + udp + bytes(64))[:64]


def _pcap(path: Path, packets: list[tuple[int, int]]) -> None:
    """(nanoseconds, destination port) -> a nanosecond pcap of Ethernet, as tcpdump writes it."""
    out = struct.pack("<IHHiIII", sfu_bursts.PCAP_NANO_MAGIC, 2, 4, 0, 0, 64, 1)
    for ns, port in packets:
        frame = _frame(port)
        out += struct.pack("<IIII", ns // 1_000_000_000, ns % 1_000_000_000, len(frame), 1250)
        out += frame
    path.write_bytes(out)


def test_most_within_a_window() -> None:
    ms = 1_000_000
    times = [0, 100, 200, 5 * ms, 5 * ms + 1, 5 * ms + 2, 5 * ms + 3, 20 * ms]
    assert sfu_bursts.most_within(times, ms) == 4
    assert sfu_bursts.most_within(times, 10 * ms) == 7
    assert sfu_bursts.most_within([], ms) == 0


def test_figures_per_destination_socket(tmp_path: Path) -> None:
    ms = 1_000_000
    # port 5000: one datagram a millisecond for 200 ms; port 6000: the same, then 30 at once
    packets = [(i * ms, 5000) for i in range(200)] + [(i * ms + 1, 6000) for i in range(200)]
    packets += [(250 * ms + i, 6000) for i in range(30)]
    packets += [(i * ms, 7000) for i in range(10)]  # too few to judge: left out
    packets.sort()
    _pcap(tmp_path / "x.pcap", packets)
    assert set(sfu_bursts.arrivals(tmp_path / "x.pcap")) == {5000, 6000, 7000}
    f = sfu_bursts.figures(tmp_path / "x.pcap")
    assert f["sockets"] == 2
    assert f["max_in_1ms_worst"] == 30 and f["max_in_10ms_worst"] == 30
    assert f["max_in_10ms_median"] == (10 + 30) / 2


def test_a_capture_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "us.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1))
    with pytest.raises(ValueError, match="nanosecond Ethernet"):
        sfu_bursts.arrivals(tmp_path / "us.pcap")
