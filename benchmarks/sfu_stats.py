"""Pure arithmetic of benchmarks/gateway_vs_janus.py: /proc/net/snmp counters, per-stream frame
rates, one run's figures, the gateway/Janus ratios and the printed table. No I/O here, so that
tests/unit/test_sfu_stats.py checks it cheaply."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

FPS = 30


def parse_snmp(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` as {protocol: {counter: value}}: each protocol is a line of names
    followed by a line of values, both starting with ``Proto:``."""
    tables: dict[str, dict[str, int]] = {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if not names or names[0] != values[0] or len(names) != len(values):
            raise ValueError(f"not /proc/net/snmp: {names[:1]} then {values[:1]}")
        tables[names[0].rstrip(":")] = {n: int(v) for n, v in zip(names[1:], values[1:], strict=True)}
    if "Udp" not in tables:
        raise ValueError("/proc/net/snmp without a Udp table")
    return tables


def udp_delta(before: Mapping[str, Mapping[str, int]],
              after: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """What each Udp counter grew by between two snapshots."""
    return {k: after["Udp"][k] - before["Udp"].get(k, 0) for k in after["Udp"]}


def counters(text: str, prefix: str = "jb_gateway_") -> dict[str, float]:
    """The counters (``*_total``) named ``prefix*`` of a Prometheus text exposition, by series
    (name and labels as written)."""
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix) and " " in line:
            series, value = line.rsplit(" ", 1)
            if series.split("{", 1)[0].endswith("_total"):
                out[series] = float(value)
    return out


def stream_fps(before: Mapping[str, int], after: Mapping[str, int], seconds: float) -> list[float]:
    """Frames per second of each stream over a window (a stream missing at the start had 0)."""
    if seconds <= 0:
        raise ValueError("the window must be longer than 0 s")
    return [(after[k] - before.get(k, 0)) / seconds for k in sorted(after)]


def run_figures(*, sfu: str, participants: int, seconds: float, cpu_s: float,
                fps: Sequence[float], sfu_udp: Mapping[str, int],
                receiver_udp: Mapping[str, int], sender_fps: Sequence[float] = (),
                client_cpu_s: float = 0.0, audio_fps: Sequence[float] = ()) -> dict[str, Any]:
    """One run's row. ``cpu_s``: the SFU process's utime+stime over the window; ``fps``: one
    entry per stream counted at a receiver; ``sfu_udp``/``receiver_udp``: Udp counter deltas of
    the SFU's namespace and of the receivers' (root) namespace over the same window;
    ``sender_fps``: frames each source sent and ``client_cpu_s`` the clients' process CPU (when
    the clients use most of a core they, not the SFU, may be what limits the frame rates);
    ``audio_fps``: Opus frames per second of each audio stream received (50 when complete)."""
    expected = participants * (participants - 1)
    return {
        "sfu": sfu, "participants": participants, "seconds": round(seconds, 2),
        "streams": expected, "streams_received": sum(1 for f in fps if f > 0),
        "sender_fps_min": round(min(sender_fps), 2) if sender_fps else None,
        "fps_median": round(statistics.median(fps), 2) if fps else 0.0,
        "fps_min": round(min(fps), 2) if fps else 0.0,
        "audio_fps_median": round(statistics.median(audio_fps), 2) if audio_fps else None,
        "frames_share": round(sum(fps) / (expected * FPS), 4),
        "sfu_datagrams_per_s": round(sfu_udp.get("OutDatagrams", 0) / seconds, 1),
        "sfu_datagrams_in_per_s": round(sfu_udp.get("InDatagrams", 0) / seconds, 1),
        "sfu_send_errors": sfu_udp.get("SndbufErrors", 0),
        "receiver_drops": receiver_udp.get("RcvbufErrors", 0),
        "receiver_in_errors": receiver_udp.get("InErrors", 0),
        "cpu_s": round(cpu_s, 3),
        "cpu_core_fraction": round(cpu_s / seconds, 4),
        "cpu_s_per_stream_s": round(cpu_s / seconds / expected, 6),
        # when fewer frames get through than were sent, per stream-second flatters the SFU
        "cpu_ms_per_frame_received": round(cpu_s * 1000 / (sum(fps) * seconds), 4) if sum(fps) else None,
        "client_core_fraction": round(client_cpu_s / seconds, 3),
    }


def ratios(runs: Sequence[Mapping[str, Any]], participants: int,
           gateway: str = "gateway") -> dict[str, Any]:
    """Gateway / Janus at one room size: the ratio of the medians over their runs of CPU-s per
    stream-second, of datagrams sent per second and of CPU per frame received (None when a side
    has no run). ``gateway``: the name of the gateway's runs ("gateway", "gateway@REV")."""
    def med(sfu: str, key: str) -> float | None:
        vals = [r[key] for r in runs
                if r["sfu"] == sfu and r["participants"] == participants and r.get(key) is not None]
        return statistics.median(vals) if vals else None

    out: dict[str, Any] = {"participants": participants, "gateway": gateway}
    for key, name in (("cpu_s_per_stream_s", "cpu_ratio"), ("sfu_datagrams_per_s", "datagram_ratio"),
                      ("cpu_ms_per_frame_received", "cpu_per_frame_ratio")):
        g, j = med(gateway, key), med("janus", key)
        out[f"gateway_{key}"], out[f"janus_{key}"] = g, j
        out[name] = round(g / j, 2) if g is not None and j else None
    return out


COLUMNS = [("sfu", "sfu", "{}"), ("participants", "N", "{}"), ("streams", "streams", "{}"),
           ("fps_median", "fps med", "{:.1f}"), ("fps_min", "fps min", "{:.1f}"),
           ("sfu_datagrams_per_s", "dgrams/s", "{:.0f}"), ("receiver_drops", "rcv drops", "{}"),
           ("cpu_core_fraction", "SFU core", "{:.3f}"), ("client_core_fraction", "client core", "{:.2f}"),
           ("cpu_s_per_stream_s", "CPU-s/stream-s", "{:.5f}"),
           ("cpu_ms_per_frame_received", "CPU ms/frame", "{:.3f}")]


def table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs as a Markdown table (the runbook's "Gateway vs Janus" columns)."""
    head = "| run | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 1)
    rows = [f"| {i} | " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |"
            for i, r in enumerate(runs, 1)]
    return "\n".join([head, rule, *rows])
