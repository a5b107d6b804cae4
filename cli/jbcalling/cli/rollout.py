"""The steps shared by deploy and plan: render everything, check ownership, plan each job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jbcalling.cli import plan_diff, render
from jbcalling.cli.context import Ctx


@dataclass
class Planned:
    rendered: render.Rendered
    existing: dict[str, Any] | None
    plan: dict[str, Any]

    @property
    def service(self) -> str:
        return self.rendered.service

    @property
    def changed(self) -> bool:
        return self.existing is None or plan_diff.changed(self.plan)


def prepare(c: Ctx, names: list[str], var_pairs: list[str],
            var_files: list[Path] | None = None) -> list[Planned]:
    """Render and plan every named service; raise before anything is submitted."""
    services = render.resolve_services(names, c.settings.jobs_dir)
    overrides = render.parse_var_overrides(var_pairs)
    files = render.read_var_files(var_files or [])
    render.check_overrides(overrides, services, c.settings.jobs_dir)
    c.nomad.check_token()
    dev_root = c.dev.layout.volumes if c.settings.env == "dev" else None
    injected = render.injected_variables(c.settings, dev_root)
    rendered = []
    for s in services:
        c.out.detail(f"rendering {s} with vars/{c.settings.env}.hcl")
        rendered.append(render.render(c.nomad, c.settings, s, injected, overrides, files))
    existing = {r.service: c.nomad.job(r.service) for r in rendered}
    for r in rendered:
        render.check_owner(existing[r.service], r.service)
    planned = []
    for r in rendered:
        planned.append(Planned(r, existing[r.service], c.nomad.plan(r.job)))
    return planned


def show_plan(c: Ctx, p: Planned) -> None:
    if not p.changed:
        c.out.event("plan", service=p.service, changed=False,
                    message=f"{p.service}: no changes")
        return
    diff = plan_diff.lines(p.plan) if p.existing else [f"+ job {p.service}: new"]
    c.out.event("plan", service=p.service, changed=True, diff=diff,
                message="\n".join([f"{p.service}: changes"] + diff))
    for w in (p.plan.get("Warnings") or "").splitlines():
        c.out.event("warning", service=p.service, message=f"{p.service}: warning: {w}")
