"""``jbctl deploy [SERVICE...]``: render, check, plan, register, and follow to healthy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from jbcalling.cli import devmodels, endpoints, rollout, secrets
from jbcalling.cli.context import Ctx
from jbcalling.cli.monitor import Monitor, Outcome


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def deploy(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Services to deploy; default all, "
                                                              "in dependency order.")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="Override a job variable "
                                                  "(KEY=VALUE), repeatable.")] = None,
    var_file: Annotated[list[Path] | None, typer.Option(
        "--var-file", help="HCL file of variables laid over jobs/vars/<env>.hcl (a site's own "
                           "values), repeatable; --var wins over both.")] = None,
    detach: Annotated[bool, typer.Option(help="Return once the jobs are registered.")] = False,
) -> None:
    """Deploy services and wait until they are healthy in Nomad and passing in Consul.

    Every job is rendered (HCL + jobs/vars/<env>.hcl, through Nomad's parser) and checked before
    any is submitted; a job jbctl did not create is never overwritten; an unchanged job is not
    redeployed. A failed deployment that Nomad auto-reverts is followed to the end of the revert.

    Examples: jbctl deploy | jbctl deploy signaling --var signaling_count=2 |
    jbctl --env prod deploy --var-file site.hcl | jbctl --json deploy

    Exit: 0 healthy; 1 failed, reverted or unhealthy; 2 usage; 3 cluster unreachable.
    """
    c: Ctx = ctx.obj
    started = time.monotonic()
    planned = rollout.prepare(c, services or [], var or [], var_file or [])
    if c.settings.env == "dev":
        devmodels.fill(c, [p.rendered.job for p in planned])
    outcomes: list[Outcome] = []
    for p in planned:
        rollout.show_plan(c, p)
        mon = Monitor(c, p.service, time.monotonic() + c.settings.deploy_timeout_s)
        if not p.changed:
            # Unchanged: nothing to submit; only confirm it is still healthy.
            outcome = mon.wait_consul(int(p.existing["Version"]))  # type: ignore[index]
        else:
            with c.out.status(f"{p.service}: registering"):
                for path, created in secrets.ensure_for_job(c.nomad, p.service,
                                                            p.rendered.job).items():
                    c.out.event("secrets", service=p.service, path=path, created=created,
                                message=f"{p.service}: generated {', '.join(created)} in Nomad "
                                        f"Variable {path}")
                resp = c.nomad.register(p.rendered.job)
                version = int(c.nomad.job(p.service)["Version"])  # type: ignore[index]
                c.out.event("registered", service=p.service, version=version,
                            eval=resp.get("EvalID", ""),
                            message=f"{p.service}: registered version {version}")
                if detach:
                    outcomes.append(Outcome(p.service, "registered", version))
                    continue
                mon.wait_evaluation(resp.get("EvalID", ""))
                outcome = mon.follow(version)
        outcomes.append(outcome)
        c.out.event("result", service=outcome.service, status=outcome.status,
                    version=outcome.version, reverted_to=outcome.reverted_to,
                    description=outcome.description, details=outcome.details,
                    message=f"{outcome.service}: {outcome.status} (version {outcome.version})")
        if outcome.status != "healthy":
            break  # later services depend on this one
        _show_endpoints(c, p.service)
    c.out.say(f"done in {time.monotonic() - started:.1f} s")
    for o in outcomes:
        if o.status != "registered":
            o.raise_if_failed()


def _show_endpoints(c: Ctx, service: str) -> None:
    instances = c.consul.service_health(service)
    for inst in instances:
        url = endpoints.url(service, inst)
        c.out.event("endpoint", service=service, url=url, message=f"  {service}: {url}")
    if service == "ingress":
        for url in endpoints.public_urls(instances):
            c.out.event("public_url", service=service, url=url,
                        message=f"  participants open: {url}/")
