"""How `jbctl top` draws one snapshot of :func:`jbcalling.cli.prom_api.snapshot`: pure functions
from the document to rich tables (the live view redraws them; a pipe gets them once)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

BARS = "▁▂▃▄▅▆▇█"
MISSING = "-"


def sparkline(values: list[float | None], width: int = 20) -> str:
    """The last ``width`` values as bars scaled from 0 to their maximum; a gap is a space."""
    tail = values[-width:]
    known = [v for v in tail if v is not None]
    top = max(known, default=0.0)
    if top <= 0:
        return "".join(" " if v is None else BARS[0] for v in tail)
    return "".join(" " if v is None else BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))]
                   for v in tail)


def seconds(v: float | None) -> str:
    return MISSING if v is None else f"{v:.2f} s"


def rate(v: float | None) -> str:
    return MISSING if v is None else f"{v:.1f}/s"


def cores(v: float | None) -> str:
    return MISSING if v is None else f"{v * 100:.1f}%"


def size(v: float | None) -> str:
    if v is None:
        return MISSING
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return MISSING  # not reached


def services_table(doc: dict[str, Any]) -> Table:
    table = Table(title="services", title_justify="left", expand=False)
    for col, justify in (("service", "left"), ("up/targets", "right"), ("cpu", "right"),
                         ("memory", "right"), ("requests", "right"), ("5xx", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in doc["services"]:
        # redis and the ingress have no /metrics: not scraped is not down
        up = f"{s['instances_up']}/{s['targets']}" if s["targets"] else "not scraped"
        style = "red" if s["instances_up"] < s["targets"] else "dim" if not s["targets"] else ""
        table.add_row(s["service"], up, cores(s["cpu_cores"]),
                      size(s["memory_bytes"]), rate(s["requests_per_s"]), rate(s["errors_per_s"]),
                      style=style)
    return table


def rooms_line(doc: dict[str, Any]) -> Text:
    r = doc["rooms"]

    def n(key: str) -> str:
        return MISSING if r[key] is None else str(r[key])

    sizes = ", ".join(f"rooms of {size}: {rooms}" for size, rooms in r.get("by_participants", {}).items())
    return Text(f"rooms {n('rooms')}, participants {n('participants')} (signaling); "
                f"media rooms {n('media_rooms')}, peers {n('media_peers')} (gateway)"
                + (f"\n{sizes}" if sizes else ""))


def captions_table(doc: dict[str, Any]) -> Table:
    table = Table(title="caption latency after end of speech (5 min)", title_justify="left")
    for col in ("kind", "source", "lang", "p50", "p95", "p95, last 10 min"):
        table.add_column(col, justify="right" if col in ("p50", "p95") else "left")
    for c in doc["captions"]:
        table.add_row(c["kind"], c["source"], c["lang"], seconds(c["p50_s"]), seconds(c["p95_s"]),
                      sparkline(c["p95_history_s"]))
    if not doc["captions"]:
        table.add_row("(no captions yet)", "", "", "", "", "")
    return table


def view(doc: dict[str, Any], error: str = "") -> Group:
    stamp = time.strftime("%H:%M:%S", time.localtime(doc["time"]))
    head = Text(f"jbctl top  {doc['prometheus']}  {stamp}", style="bold")
    parts: list[Any] = [head]
    if error:
        parts.append(Text(f"last refresh failed: {error}", style="red"))
    parts += [services_table(doc), rooms_line(doc), captions_table(doc)]
    return Group(*parts)
