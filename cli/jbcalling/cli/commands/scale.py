"""``jbctl scale SERVICE N``: change a service's instance count within its scaling block."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from jbcalling.cli import render
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import UsageError
from jbcalling.cli.monitor import Monitor


def register(app: typer.Typer) -> None:
    app.command("scale")(scale)


def scale(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Service to scale.")],
    count: Annotated[int, typer.Argument(help="Instances wanted.")],
    detach: Annotated[bool, typer.Option(help="Return once Nomad accepted the change.")] = False,
) -> None:
    """Set SERVICE's instance count to COUNT and wait until COUNT instances pass in Consul.

    COUNT must lie within the job's scaling block (min..max). Example: jbctl scale signaling 2
    """
    c: Ctx = ctx.obj
    render.resolve_services([service], c.settings.jobs_dir)
    job = c.nomad.job(service)
    if job is None or job.get("Stop"):
        raise UsageError(f"{service} is not deployed", hint=f"run `jbctl deploy {service}` first")
    render.check_owner(job, service)
    groups = [tg for tg in job["TaskGroups"] if tg.get("Scaling")]
    if not groups:
        raise UsageError(f"{service} has no scaling block: it runs a fixed number of instances",
                         hint="stateful services (redis) do not scale")
    group = groups[0]
    lo, hi = group["Scaling"].get("Min", 0), group["Scaling"].get("Max", 0)
    if not lo <= count <= hi:
        raise UsageError(f"{service} may run {lo} to {hi} instances (its scaling block), not {count}",
                         hint=f"raise {service}_max in jobs/vars/{c.settings.env}.hcl and deploy")
    if group["Count"] == count:
        c.out.say(f"{service} already has {count} instance(s)")
    resp = c.nomad.scale(service, group["Name"], count, f"jbctl scale {service} {count}")
    c.out.event("scaled", service=service, count=count, eval=resp.get("EvalID"),
                message=f"{service}: scaling {group['Count']} -> {count}")
    if detach:
        return
    mon = Monitor(c, service, time.monotonic() + c.settings.deploy_timeout_s)
    mon.wait_evaluation(resp.get("EvalID", ""))
    version = int(c.nomad.job(service)["Version"])  # type: ignore[index]
    outcome = mon.follow(version) if group["Count"] != count else mon.wait_consul(version)
    if outcome.status == "healthy":
        outcome = mon.wait_consul(version, expect=count)
    c.out.event("result", service=service, status=outcome.status, count=count,
                message=f"{service}: {outcome.status} with {count} instance(s)")
    outcome.raise_if_failed()
