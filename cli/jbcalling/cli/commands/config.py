"""``jbctl config``: the resolved settings, tokens redacted."""

from __future__ import annotations

import typer

from jbcalling.cli.context import Ctx


def register(app: typer.Typer) -> None:
    app.command("config")(config)


def config(ctx: typer.Context) -> None:
    """Show the settings jbctl resolved from the environment and options (tokens redacted)."""
    c: Ctx = ctx.obj
    data = c.settings.redacted()
    if c.out.as_json:
        c.out.data(data)
    else:
        c.out.table("jbctl settings", ["setting", "value"], [[k, v] for k, v in data.items()])
