"""``jbctl rollback SERVICE [--to VERSION]``: return to an earlier job version and follow it."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from jbcalling.cli import render
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import UsageError
from jbcalling.cli.monitor import Monitor


def register(app: typer.Typer) -> None:
    app.command("rollback")(rollback)


def rollback(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service to roll back.")],
    to: Annotated[int | None, typer.Option("--to", help="Job version; default the newest "
                                           "stable version before the current one.")] = None,
) -> None:
    """Revert SERVICE to an earlier job version and wait until it is healthy.

    Example: jbctl rollback signaling | jbctl rollback signaling --to 3
    """
    c: Ctx = ctx.obj
    render.resolve_services([service], c.settings.jobs_dir)
    job = c.nomad.job(service)
    if job is None:
        raise UsageError(f"{service} is not deployed")
    render.check_owner(job, service)
    current = int(job["Version"])
    versions = c.nomad.versions(service)
    if to is None:
        # Nomad does not revert to a spec equal to the current one, so look past the versions
        # that only repeat it (an auto-revert leaves such a copy).
        now = next(v for v in versions if v["Version"] == current)
        earlier = [v for v in versions if v["Version"] < current and v.get("Stable")
                   and _spec(v) != _spec(now)]
        if not earlier:
            raise UsageError(f"{service} has no earlier stable version that differs from {current}",
                             hint="name one with --to (see the Nomad UI's versions tab)")
        to = max(v["Version"] for v in earlier)
    elif to == current or to not in {v["Version"] for v in versions}:
        raise UsageError(f"{service} has no earlier version {to} (current is {current})",
                         hint=f"known versions: {sorted(v['Version'] for v in versions)}")
    resp = c.nomad.revert(service, to)
    c.out.event("revert", service=service, to=to,
                message=f"{service}: reverting version {current} to {to}")
    mon = Monitor(c, service, time.monotonic() + c.settings.deploy_timeout_s)
    mon.wait_evaluation(resp.get("EvalID", ""))
    if int(c.nomad.job(service)["Version"]) == current:  # type: ignore[index]
        c.out.say(f"{service}: version {to} has the same spec as {current}: nothing to roll back")
        return
    outcome = mon.follow(current + 1)
    c.out.event("result", service=service, status=outcome.status, version=outcome.version,
                message=f"{service}: {outcome.status} (version {outcome.version}, "
                        f"a copy of {to})")
    outcome.raise_if_failed()


def _spec(version: dict[str, Any]) -> str:
    """What a job version runs, without its bookkeeping fields."""
    return json.dumps([version.get("TaskGroups"), version.get("Meta"), version.get("Update"),
                       version.get("Constraints")], sort_keys=True)
