"""``jbctl stop SERVICE...|--all [--purge]``: stop jobs and wait for their instances to end."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from jbcalling.cli import render
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import DeploymentFailed, UsageError


def register(app: typer.Typer) -> None:
    app.command("stop")(stop)


def stop(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Services to stop.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every service jbctl manages.")] = False,
    purge: Annotated[bool, typer.Option(help="Also remove the jobs' history from Nomad.")] = False,
) -> None:
    """Stop services (in reverse dependency order) and wait until no instance runs.

    Example: jbctl stop --all --purge
    """
    c: Ctx = ctx.obj
    if bool(services) == all_:
        raise UsageError("name the services to stop, or pass --all (not both)")
    names = render.resolve_services(services or [], c.settings.jobs_dir)
    targets = []
    for name in reversed(names):
        job = c.nomad.job(name)
        if job is None:
            continue
        render.check_owner(job, name)
        targets.append(name)
    for name in targets:
        c.nomad.deregister(name, purge)
        c.out.event("stopping", service=name, message=f"{name}: stopping")
    deadline = time.monotonic() + 60
    left = set(targets)
    while left and time.monotonic() < deadline:
        for name in sorted(left):
            allocs = c.nomad.allocations(name)
            if all(a["ClientStatus"] not in ("running", "pending") for a in allocs):
                c.out.event("stopped", service=name, message=f"{name}: stopped")
                left.discard(name)
        time.sleep(0.3)
    c.out.data({"stopped": sorted(set(targets) - left), "still_running": sorted(left)})
    if left:
        raise DeploymentFailed(f"still running after 60 s: {', '.join(sorted(left))}",
                               hint="see `jbctl status`; Nomad may still be stopping them")
