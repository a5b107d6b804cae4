"""The dev cluster's models: its speech services read the dev models (the real English models
installed from PyPI, stand-ins of the real formats for the rest) from its ``models`` host volume,
which ``jbctl deploy`` fills before they start: seconds the first time, a check afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import JbctlError

VOLUME = "models"


def uses_models(job: dict[str, Any]) -> bool:
    return any(VOLUME in (g.get("Volumes") or {}) for g in job.get("TaskGroups") or [])


def install(folder: Path, rebuild: bool = False, only: set[str] | None = None) -> dict[str, str]:
    """Fill ``folder`` with the dev models (or those in ``only``); model name -> what it is."""
    try:
        from jbcalling.speech.layout import install_dev_models
    except ImportError as exc:
        raise JbctlError("the speech services are not installed in this venv, so jbctl cannot "
                         "build the dev models", hint="pip install -e '.[dev]'") from exc
    folder.mkdir(parents=True, exist_ok=True)
    return install_dev_models(folder, rebuild=rebuild, only=only)


def fill(c: Ctx, jobs: list[dict[str, Any]]) -> None:
    """Put every dev model into the dev cluster's models volume when a job reads it."""
    if not any(uses_models(j) for j in jobs):
        return
    folder = c.dev.layout.volume(VOLUME)
    with c.out.status(f"dev models: filling {folder}"):
        done = install(folder)
    c.out.event("dev_models", models_dir=str(folder), models=done,
                message=f"dev models in {folder}: {', '.join(sorted(done))}")
