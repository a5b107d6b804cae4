"""``jbctl health``: every Consul check; exit 1 when any is critical."""

from __future__ import annotations

import typer

from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_FAILED


def register(app: typer.Typer) -> None:
    app.command("health")(health)


def health(ctx: typer.Context) -> None:
    """List every check Consul runs (service, node, status, output). Exit 1 if any is critical."""
    c: Ctx = ctx.obj
    checks = sorted(c.consul.checks_in_state("any"),
                    key=lambda ch: (ch.get("ServiceName", ""), ch["Node"], ch["Name"]))
    doc = [{"service": ch.get("ServiceName", ""), "check": ch["Name"], "node": ch["Node"],
            "status": ch["Status"], "output": (ch.get("Output") or "").strip()} for ch in checks]
    critical = [d for d in doc if d["status"] == "critical"]
    c.out.data({"checks": doc, "critical": len(critical)})
    c.out.table("Consul checks", ["service", "check", "node", "status", "output"],
                [[d["service"] or "(node)", d["check"], d["node"], d["status"],
                  d["output"][:120]] for d in doc])
    if critical:
        c.out.say(f"{len(critical)} critical check(s)")
        raise typer.Exit(EXIT_FAILED)
