"""``jbctl``: the entry point, global options and the exit-code contract."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from jbcalling.cli.commands import (
    cluster,
    config,
    deploy,
    health,
    logs,
    models,
    plan,
    probe,
    rollback,
    scale,
    status,
    stop,
    top,
)
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_USAGE, JbctlError
from jbcalling.cli.global_options import GlobalOptionsGroup
from jbcalling.cli.output import Output
from jbcalling.cli.settings import CliSettings

EXIT_CODES = """
Exit codes: 0 ok; 1 failed, rolled back or unhealthy; 2 usage error; 3 cluster unreachable
(or it refused the token). `jbctl plan`: 0 no change, 1 changes, 255 error.
"""

app = typer.Typer(
    name="jbctl",
    help="Operate a jbcalling cluster: the Nomad jobs of every service, checked in Consul.\n\n"
         "Examples:\n\n"
         "  jbctl cluster up            # a local Nomad + Consul dev cluster\n\n"
         "  jbctl deploy                # every service, in dependency order\n\n"
         "  jbctl status --json         # options before or after the command\n\n"
         "  jbctl --env prod deploy signaling\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=GlobalOptionsGroup,  # --json, --env, -v, -q before or after the command
)

for module in (cluster, deploy, plan, status, top, scale, health, logs, rollback, stop, config,
               models, probe):
    module.register(app)


@app.callback()
def _global(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", help="dev or prod (jobs/vars/<env>.hcl); "
                                            "default $JB_ENV or dev.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")] = False,
) -> None:
    if env is not None and env not in ("dev", "prod"):
        raise typer.BadParameter(f"{env!r}: choose dev or prod", param_hint="--env")
    try:
        settings = CliSettings(env=env) if env else CliSettings()
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            typer.echo(f"error: setting {field}: {err['msg']}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    out = Output(as_json=as_json, verbosity=1 if verbose else -1 if quiet else 0)
    ctx.obj = Ctx(settings, out)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except JbctlError as exc:
        Output().error(exc.message, exc.hint, exc.details)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.exceptions.TyperException as exc:  # usage errors from the option parser
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
