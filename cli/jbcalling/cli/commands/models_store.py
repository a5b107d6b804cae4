"""The models manifest, its lock file, and the download / unpack / convert / verify steps.

Pure of any UI: ``jbctl models`` (models.py) calls these with a progress callback.

manifest.toml -> one ``[[models]]`` entry per model; each ``[[models.files]]`` has ``url``,
``sha256`` (may be empty), ``size`` (0: unknown), ``archive`` ("", "zip", "tar.bz2", "tar.gz")
and ``extract`` (archive member regex -> file name in the model's folder; empty: every member,
top folder stripped). ``convert = "opus-mt-int8"`` runs CTranslate2's OPUS-MT converter on the
unpacked release. ``expect`` lists the files the service needs in ``<models_dir>/<name>/``.

manifest.lock.json (beside the manifest) pins what a first download saw: the sha256 and size of
every downloaded file whose manifest entry has no checksum, and the sha256 of every installed file,
so that ``verify`` can check a models folder that Ansible copied to a node.

Trust: a file is installed only when its sha256 matches a pin, the manifest's or else the lock's.
A file pinned in neither is not even downloaded unless the caller trusts a first download
(``trust_first``: the operator's ``--pin-new``), which then pins it in the lock; later pulls must
match that pin. Archives never write outside the model's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

Progress = Callable[[str, int, int], None]  # (label, done bytes, total bytes or 0)


class ModelError(Exception):
    """A download, checksum, unpack or conversion failed (the message says which file)."""


@dataclass
class ModelFile:
    url: str
    sha256: str = ""
    size: int = 0
    archive: str = ""
    extract: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]


@dataclass
class Model:
    name: str
    service: str
    engine: str
    languages: list[str]
    license: str
    files: list[ModelFile]
    expect: list[str]
    convert: str = ""
    license_url: str = ""
    notes: str = ""


def load_manifest(path: Path) -> list[Model]:
    doc = tomllib.loads(path.read_text("utf-8"))
    models = []
    for m in doc.get("models", []):
        files = [ModelFile(**f) for f in m.pop("files", [])]
        models.append(Model(files=files, **m))
    return models


class Lock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def model(self, name: str) -> dict[str, Any]:
        return self.data.setdefault(name, {"downloads": {}, "installed": {}})

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, progress: Progress, timeout: float = 30) -> Path:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as r:
        if r.status_code == 416:  # the part is already complete
            part.rename(dest)
            return dest
        if r.status_code not in (200, 206):
            raise ModelError(f"{url}: HTTP {r.status_code}")
        if r.status_code == 200:
            have = 0  # the server ignored the range: start over
        total = int(r.headers.get("content-length", 0)) + have
        with open(part, "ab" if have else "wb") as f:
            done = have
            progress(dest.name, done, total)
            for chunk in r.iter_bytes(1 << 16):
                f.write(chunk)
                done += len(chunk)
                progress(dest.name, done, total)
    part.rename(dest)
    return dest


def _inside(target: str) -> str:
    """``target`` if it names a file inside the model's folder (no absolute path, no ``..``)."""
    parts = PurePosixPath(target.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise ModelError(f"archive member {target!r} would be written outside the model's folder: "
                         "refusing the archive")
    return target


def _members(names: list[str], extract: dict[str, str]) -> dict[str, str]:
    """Archive member -> file name in the model folder."""
    if not extract:
        return {n: _inside(n.split("/", 1)[1] if "/" in n else n) for n in names
                if not n.endswith("/")}
    chosen: dict[str, str] = {}
    for pattern, target in extract.items():
        matches = sorted(n for n in names if re.fullmatch(pattern, n))
        if not matches:
            raise ModelError(f"no archive member matches {pattern!r}")
        chosen[matches[0]] = _inside(target)
    return chosen


def unpack(archive: Path, kind: str, extract: dict[str, str], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            for member, target in _members(z.namelist(), extract).items():
                (out / target).parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, open(out / target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                written.append(target)
    else:
        with tarfile.open(archive, "r:*") as t:
            files = {m.name.removeprefix("./"): m for m in t.getmembers() if m.isfile()}
            for member, target in _members(list(files), extract).items():
                fobj = t.extractfile(files[member])
                if fobj is None:
                    raise ModelError(f"{member}: not a regular file")
                (out / target).parent.mkdir(parents=True, exist_ok=True)
                with fobj, open(out / target, "wb") as dst:
                    shutil.copyfileobj(fobj, dst)
                written.append(target)
    return written


def convert_opus_mt(release: Path, out: Path) -> None:
    """An unpacked OPUS-MT release -> CTranslate2 int8 + its SentencePiece models."""
    from ctranslate2.converters.opus_mt import OpusMTConverter

    OpusMTConverter(str(release)).convert(str(out), quantization="int8", force=True)
    for name in ("source.spm", "target.spm"):
        shutil.copy(release / name, out / name)


def pin_of(f: ModelFile, entry: dict[str, Any], lock: Lock) -> tuple[str, str]:
    """(the sha256 ``f`` must have, where that pin is): the manifest's, else the lock's, else
    ("", "")."""
    if f.sha256:
        return f.sha256.lower(), "the manifest"
    locked = str(entry["downloads"].get(f.filename, {}).get("sha256", ""))
    return (locked, lock.path.name) if locked else ("", "")


def pull(model: Model, models_dir: Path, lock: Lock, progress: Progress,
         trust_first: bool = False) -> dict[str, Any]:
    """Download, check, unpack (and convert) one model into ``models_dir/<name>``.

    ``trust_first``: download a file pinned nowhere and pin it in the lock; without it such a
    model is refused before anything is downloaded.
    """
    entry = lock.model(model.name)
    unpinned = [f.filename for f in model.files if not pin_of(f, entry, lock)[0]]
    if unpinned and not trust_first:
        raise ModelError(
            f"{model.name}: no sha256 pinned for {', '.join(unpinned)} (neither in the manifest "
            f"nor in {lock.path.name}): refusing to trust a first download. Check the source, "
            "then pull with --pin-new to pin what it serves now (and commit the lock file)")
    cache = models_dir / ".downloads" / model.name
    folder = models_dir / model.name
    pinned = []
    with tempfile.TemporaryDirectory(prefix=f"jb-{model.name}-", dir=models_dir) as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        for f in model.files:
            path = cache / f.filename
            if not path.exists():
                download(f.url, path, progress)
            digest = sha256_of(path)
            want, where = pin_of(f, entry, lock)
            if want and digest != want:
                path.rename(path.with_name(path.name + ".bad"))
                raise ModelError(f"{model.name}: {f.filename} has sha256 {digest}, but {where} "
                                 f"pins {want}: refused (moved aside as {path.name}.bad). The file "
                                 "changed at its source or on the way: find out which before "
                                 "changing the pin")
            if f.size and path.stat().st_size != f.size:
                raise ModelError(f"{model.name}: {f.filename} is {path.stat().st_size} bytes, "
                                 f"expected {f.size}")
            if not want:
                pinned.append(f.filename)
            entry["downloads"][f.filename] = {"sha256": digest, "size": path.stat().st_size,
                                              "url": f.url}
            if f.archive:
                unpack(path, f.archive, f.extract, stage)
            else:
                shutil.copy(path, stage / (next(iter(f.extract.values())) if f.extract
                                           else f.filename))
        if model.convert == "opus-mt-int8":
            converted = Path(tmp) / "converted"
            convert_opus_mt(stage, converted)
            stage = converted
        missing = [n for n in model.expect if not (stage / n).is_file()]
        if missing:
            raise ModelError(f"{model.name}: after unpacking, missing {', '.join(missing)}")
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(stage), folder)
    entry["installed"] = {p.relative_to(folder).as_posix(): sha256_of(p)
                          for p in sorted(folder.rglob("*")) if p.is_file()}
    lock.save()
    return {"model": model.name, "folder": str(folder), "pinned": pinned,
            "files": sorted(entry["installed"])}


def verify(model: Model, models_dir: Path, lock: Lock) -> dict[str, Any]:
    """Check ``models_dir/<name>``: every expected file there, every locked checksum matching."""
    folder = models_dir / model.name
    installed = lock.data.get(model.name, {}).get("installed", {})
    problems = [f"missing {n}" for n in model.expect if not (folder / n).is_file()]
    for rel, digest in installed.items():
        path = folder / rel
        if path.is_file() and sha256_of(path) != digest:
            problems.append(f"{rel}: checksum differs from the lock")
    unpinned = [f.filename for f in model.files if not f.sha256]
    return {"model": model.name, "ok": not problems, "problems": problems,
            "locked": bool(installed), "unpinned_in_manifest": unpinned}
