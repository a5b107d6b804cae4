"""The arithmetic of benchmarks/gateway_vs_janus.py (benchmarks/sfu_stats.py): /proc/net/snmp
parsing, per-stream frame rates, one run's figures and the gateway/Janus ratios."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# appended, not prepended: a benchmark's module never shadows a test helper of the same name
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import sfu_stats

pytestmark = pytest.mark.unit

SNMP = """Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 100
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 4868837 42443 198996 5000261 198990 3 0 0 0
UdpLite: InDatagrams NoPorts InErrors
UdpLite: 0 0 0
"""


def test_snmp_parsed_by_name_not_position() -> None:
    tables = sfu_stats.parse_snmp(SNMP)
    assert tables["Udp"]["OutDatagrams"] == 5000261
    assert tables["Udp"]["RcvbufErrors"] == 198990
    assert tables["UdpLite"]["InDatagrams"] == 0
    assert tables["Ip"] == {"Forwarding": 1, "DefaultTTL": 64, "InReceives": 100}


@pytest.mark.parametrize("text", ["", "Ip: A B\nUdp: 1 2\n", "Ip: A B\nIp: 1\n"])
def test_snmp_that_is_not_snmp_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sfu_stats.parse_snmp(text)


def test_udp_delta() -> None:
    before = sfu_stats.parse_snmp(SNMP)
    after = sfu_stats.parse_snmp(SNMP.replace("5000261 198990 3", "5003261 199000 3"))
    delta = sfu_stats.udp_delta(before, after)
    assert (delta["OutDatagrams"], delta["RcvbufErrors"], delta["SndbufErrors"]) == (3000, 10, 0)


def test_stream_fps_counts_a_stream_that_appeared_during_the_window_from_zero() -> None:
    fps = sfu_stats.stream_fps({"a<-b": 100}, {"a<-b": 400, "b<-a": 150}, 10.0)
    assert fps == [30.0, 15.0]
    with pytest.raises(ValueError):
        sfu_stats.stream_fps({}, {}, 0)


def test_run_figures_per_stream_second_and_drops() -> None:
    r = sfu_stats.run_figures(sfu="janus", participants=3, seconds=30.0, cpu_s=1.2,
                              fps=[30.0, 30.0, 29.0, 30.0, 30.0, 0.0],
                              sfu_udp={"OutDatagrams": 60000, "SndbufErrors": 0},
                              receiver_udp={"RcvbufErrors": 7, "InErrors": 7},
                              sender_fps=[30.0, 29.5, 30.1], client_cpu_s=15.0,
                              audio_fps=[50.0, 49.0, 50.0, 50.0, 50.0, 0.0])
    assert r["streams"] == 6 and r["streams_received"] == 5
    assert r["sender_fps_min"] == 29.5 and r["client_core_fraction"] == 0.5
    assert r["audio_fps_median"] == 50.0 and r["sfu_datagrams_in_per_s"] == 0.0
    assert (r["fps_median"], r["fps_min"]) == (30.0, 0.0)
    assert r["sfu_datagrams_per_s"] == 2000.0 and r["receiver_drops"] == 7
    assert r["cpu_s_per_stream_s"] == pytest.approx(1.2 / 30 / 6, abs=1e-6)
    assert r["frames_share"] == pytest.approx(149 / 180, abs=1e-4)
    assert r["cpu_ms_per_frame_received"] == pytest.approx(1200 / (149 * 30), abs=1e-4)


def _run(sfu: str, n: int, cpu: float, dgrams: float) -> dict[str, object]:
    return {"sfu": sfu, "participants": n, "cpu_s_per_stream_s": cpu, "sfu_datagrams_per_s": dgrams,
            "cpu_ms_per_frame_received": None if sfu == "gateway" and cpu > 0.025 else cpu * 40}


def test_ratios_are_of_the_medians_at_one_room_size() -> None:
    runs = [_run("gateway", 6, 0.020, 10000), _run("janus", 6, 0.005, 7000),
            _run("gateway", 6, 0.030, 11000), _run("janus", 6, 0.006, 7200),
            _run("gateway", 6, 0.024, 10100), _run("janus", 6, 0.0055, 7100),
            _run("gateway", 4, 1.0, 1), _run("janus", 4, 1.0, 1)]
    r = sfu_stats.ratios(runs, 6)
    assert r["gateway_cpu_s_per_stream_s"] == 0.024 and r["janus_cpu_s_per_stream_s"] == 0.0055
    assert r["cpu_ratio"] == pytest.approx(0.024 / 0.0055, abs=0.01)
    assert r["datagram_ratio"] == pytest.approx(10100 / 7100, abs=0.01)
    # a run that received no frame has no CPU per frame: the median is of the others
    assert r["cpu_per_frame_ratio"] == pytest.approx(0.022 / 0.0055, abs=0.01)
    assert sfu_stats.ratios(runs[:1], 6)["cpu_ratio"] is None  # no Janus run: no ratio
    named = [{**r, "sfu": "gateway@abc"} if r["sfu"] == "gateway" else r for r in runs]
    assert sfu_stats.ratios(named, 6, "gateway@abc")["cpu_ratio"] == r["cpu_ratio"]
    assert sfu_stats.ratios(named, 6)["cpu_ratio"] is None  # "gateway" ran no run here


def test_table_has_a_row_per_run() -> None:
    row = sfu_stats.run_figures(sfu="gateway", participants=2, seconds=10.0, cpu_s=0.5,
                                fps=[30.0, 30.0], sfu_udp={}, receiver_udp={})
    lines = sfu_stats.table([row, row]).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 1 | gateway | 2 | 2 | 30.0 |")


def test_counters_of_a_prometheus_exposition() -> None:
    text = """# HELP jb_gateway_forwarded_packets_total RTP packets sent
# TYPE jb_gateway_forwarded_packets_total counter
jb_gateway_forwarded_packets_total{kind="video"} 1200.0
jb_gateway_forwarded_packets_total{kind="audio"} 300.0
jb_gateway_peers 4.0
jb_gateway_forwarded_packets_created{kind="video"} 1.7e+09
process_cpu_seconds_total 12.5
"""
    assert sfu_stats.counters(text) == {'jb_gateway_forwarded_packets_total{kind="video"}': 1200.0,
                                        'jb_gateway_forwarded_packets_total{kind="audio"}': 300.0}
