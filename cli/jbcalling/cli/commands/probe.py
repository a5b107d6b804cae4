"""``jbctl probe``: a synthetic call through the whole pipeline, stage by stage."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_FAILED, UsageError


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)


def probe(
    ctx: typer.Context,
    utterances: Annotated[int, typer.Option("-n", "--utterances", min=1, max=200,
                                            help="How many sentences to speak.")] = 5,
    signaling_url: Annotated[str, typer.Option("--url", help="signaling URL; default a "
                                               "healthy instance from Consul.")] = "",
    tts_url: Annotated[str, typer.Option(help="tts URL that speaks the test sentences; "
                                         "default from Consul.")] = "",
    ice_address: Annotated[list[str] | None, typer.Option(help="Local address for ICE; "
                                                          "dev default 127.0.0.1.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each stage may take.")] = 10.0,
    save: Annotated[Path | None, typer.Option(help="Also write the JSON result here.")] = None,
    camera: Annotated[bool, typer.Option(help="Also send a camera (VP8, 640x480) from both "
                                         "synthetic participants. Off by default: the probe "
                                         "times speech, and on a small machine the encoding "
                                         "competes with the services it measures.")] = False,
) -> None:
    """Join a room with two synthetic participants: one speaks known English sentences, the
    other (captions in Vietnamese, hearing the translation) times each stage: first partial
    after speech onset, final / translated caption / first translated audio after speech end.

    Prints p50/p95 per stage (a table, or JSON with --json). Exit 1 if a stage never arrived.
    Example: jbctl probe -n 20 --save benchmarks/results/probe.json
    """
    c: Ctx = ctx.obj
    from jbcalling.cli.probe_run import STAGES, run_probe
    from jbcalling.gateway import ice

    signaling = signaling_url or _from_consul(c, "signaling")
    tts = tts_url or _from_consul(c, "tts")
    addresses = ice_address if ice_address else (["127.0.0.1"] if c.settings.env == "dev" else [])
    ice.use_host_addresses(addresses)
    started = time.monotonic()
    load_before = os.getloadavg()
    result = asyncio.run(run_probe(signaling, tts, utterances, timeout, c.out.say, camera))
    summary = result.summary()
    doc = {"signaling": signaling, "camera": camera, "utterances": result.utterances,
           "summary": summary, "captions": result.captions,
           "wall_s": round(time.monotonic() - started, 1),
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "cpus": os.cpu_count()}
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(doc, indent=2))
    c.out.data(doc)
    c.out.table(f"pipeline latency over {utterances} utterance(s)",
                ["stage", "p50 ms", "p95 ms", "measured", "missing"],
                [[s, summary[s]["p50"], summary[s]["p95"], summary[s]["n"], summary[s]["missing"]]
                 for s in STAGES])
    failed = [s for s in STAGES if summary[s]["missing"]]
    if failed:
        c.out.error(f"stage(s) that did not arrive within {timeout:.0f} s: {', '.join(failed)}",
                    hint="`jbctl health` and `jbctl logs gateway --stderr` show which service")
        raise typer.Exit(EXIT_FAILED)


def _from_consul(c: Ctx, service: str) -> str:
    for inst in c.consul.service_health(service):
        if all(ch["Status"] == "passing" for ch in inst["Checks"]):
            svc = inst["Service"]
            return f"http://{svc.get('Address') or inst['Node']['Address']}:{svc['Port']}"
    raise UsageError(f"no healthy {service} instance in Consul",
                     hint=f"deploy it (`jbctl deploy {service}`) or pass its URL")
