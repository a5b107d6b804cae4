"""``jbctl logs SERVICE [-f] [--stderr]``: a service's task logs, from Nomad."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from jbcalling.cli import render
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service whose logs to show.")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep streaming.")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr, not stdout.")] = False,
    alloc: Annotated[str, typer.Option(help="Allocation id (prefix); default the newest.")] = "",
    tail: Annotated[int, typer.Option(help="Bytes from the end to start at.")] = 16384,
) -> None:
    """Print the newest running instance's log (services log JSON lines on stderr).

    Example: jbctl logs signaling --stderr -f
    """
    c: Ctx = ctx.obj
    render.resolve_services([service], c.settings.jobs_dir)
    allocs = sorted(c.nomad.allocations(service), key=lambda a: a.get("CreateTime", 0),
                    reverse=True)
    if alloc:
        allocs = [a for a in allocs if a["ID"].startswith(alloc)]
    else:
        allocs = sorted(allocs, key=lambda a: a["ClientStatus"] != "running")
    if not allocs:
        raise UsageError(f"no allocation of {service}" + (f" matching {alloc}" if alloc else ""),
                         hint="`jbctl status` lists what runs")
    chosen = allocs[0]
    c.out.say(f"{service}: allocation {chosen['ID'][:8]} ({chosen['ClientStatus']}) "
              f"on {chosen.get('NodeName', '?')}")
    try:
        for chunk in c.nomad.logs(chosen["ID"], service, "stderr" if stderr else "stdout",
                                  follow, tail):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
