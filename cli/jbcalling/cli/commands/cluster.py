"""``jbctl cluster up|down|status``: the local dev cluster (real Consul and Nomad in -dev mode)."""

from __future__ import annotations

from typing import Annotated

import typer

from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_FAILED

cluster_app = typer.Typer(help="The local dev cluster: real `consul agent -dev` and "
                               "`nomad agent -dev` on 127.0.0.1.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")


def _print_urls(c: Ctx, info: dict[str, object]) -> None:
    c.out.say(f"Nomad UI:  {info['nomad_ui']}")
    c.out.say(f"Consul UI: {info['consul_ui']}")
    if info.get("acl"):
        c.out.say(f"Nomad token: in {c.dev.layout.token} (jbctl reads it by itself)")


@cluster_app.command("up")
def up(ctx: typer.Context,
       acl: Annotated[bool, typer.Option(help="Enable Nomad ACLs and bootstrap a management "
                                              "token, as in production.")] = False) -> None:
    """Start the dev cluster, or confirm it runs (idempotent). Prints the UI URLs.

    Example: jbctl cluster up && jbctl deploy
    """
    c: Ctx = ctx.obj
    info = c.dev.up(c.out.say, acl=acl)
    _print_urls(c, info)
    c.out.data(info)


@cluster_app.command("down")
def down(ctx: typer.Context) -> None:
    """Stop every job, the agents and any task process they left. Volumes are kept."""
    c: Ctx = ctx.obj
    c.out.data(c.dev.down(c.out.say))


@cluster_app.command("status")
def status(ctx: typer.Context) -> None:
    """Is the dev cluster running? Exit 1 when it is not."""
    c: Ctx = ctx.obj
    info = c.dev.status()
    c.out.data(info)
    if info["running"]:
        c.out.say("dev cluster running")
        _print_urls(c, info)
    else:
        c.out.say("dev cluster not running (start it with `jbctl cluster up`)")
        raise typer.Exit(EXIT_FAILED)
