"""``jbctl plan [SERVICE...]``: what a deploy would change, without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jbcalling.cli import rollout
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_PLAN_ERROR, JbctlError


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)


def plan(
    ctx: typer.Context,
    services: Annotated[list[str] | None, typer.Argument(help="Services; default all.")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="KEY=VALUE override.")] = None,
    var_file: Annotated[list[Path] | None, typer.Option(
        "--var-file", help="HCL file of variables over jobs/vars/<env>.hcl, repeatable.")] = None,
) -> None:
    """Render and plan every job and show the diff against what runs.

    Exit: 0 no change, 1 changes, 255 error (as nomad-pack plan).
    """
    c: Ctx = ctx.obj
    try:
        planned = rollout.prepare(c, services or [], var or [], var_file or [])
    except JbctlError as exc:
        c.out.error(exc.message, exc.hint, exc.details)
        raise typer.Exit(EXIT_PLAN_ERROR) from None
    for p in planned:
        rollout.show_plan(c, p)
    changed = [p.service for p in planned if p.changed]
    c.out.data({"changed": changed, "unchanged": [p.service for p in planned if not p.changed]})
    raise typer.Exit(1 if changed else 0)
