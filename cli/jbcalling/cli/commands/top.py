"""``jbctl top``: a live view of the cluster from Prometheus (services, rooms, caption latency)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from jbcalling.cli import prom_api, render, top_view
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import JbctlError


def register(app: typer.Typer) -> None:
    app.command("top")(top)


def top(ctx: typer.Context,
        interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
        once: Annotated[bool, typer.Option("--once", help="One snapshot, even on a terminal.")] = False,
        via: Annotated[str | None, typer.Option(
            help="direct: Prometheus's own address from Consul (default in dev); ingress: the "
                 "public URL's /prometheus/ with the operator's basic auth (default in prod).")
        ] = None,
        user: Annotated[str, typer.Option(help="Basic auth user through the ingress (the "
                                               "ingress job's prometheus_user).")] = "operator",
        ) -> None:
    """Per service: instances up, CPU, memory, requests and 5xx rates; rooms and participants;
    caption latency p50/p95 after end of speech per language pair, with a sparkline.

    A live view refreshed every --interval seconds on a terminal (Ctrl-C ends it); one snapshot
    otherwise, or with --json (the same figures as a document). Needs Prometheus deployed
    (`jbctl deploy prometheus`); it is found in Consul. In prod it is reached through the
    ingress as the operator (the password from Nomad Variable nomad/jobs/ingress).

    Example: jbctl top --json | jq '.services[] | {service, cpu_cores}'
    """
    c: Ctx = ctx.obj
    via = via or ("direct" if c.settings.env == "dev" else "ingress")
    if via not in ("direct", "ingress"):
        raise typer.BadParameter(f"{via!r}: choose direct or ingress", param_hint="--via")
    api = prom_api.connect(c.consul, c.nomad, c.settings, via, user)
    services = render.known_services(c.settings.jobs_dir)
    doc = prom_api.snapshot(api, services)
    live = c.out.out.is_terminal and not c.out.as_json and not once
    if not live:
        c.out.data(doc)
        if not c.out.as_json:
            c.out.out.print(top_view.view(doc))
        return
    error = ""
    try:
        with Live(top_view.view(doc), console=c.out.out, auto_refresh=False,
                  screen=False, redirect_stderr=False) as screen:
            while True:
                time.sleep(interval)
                try:
                    doc, error = prom_api.snapshot(api, services), ""
                except JbctlError as exc:  # keep the last figures on screen, say why they are old
                    error = exc.message
                screen.update(top_view.view(doc, error), refresh=True)
    except KeyboardInterrupt:
        return
