"""`jbctl models list|pull|verify|dev` against a local file server (no model host is reachable)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response

from jbcalling.speech import standin_marian, standin_transducer

pytestmark = pytest.mark.integration
JBCTL = str(Path(sys.executable).parent / "jbctl")


def file_server(files: dict[str, bytes], cut_first: set[str], seen: list[tuple[str, str]]) -> FastAPI:
    """Serves ``files`` with Range support; the first GET of a name in ``cut_first`` dies halfway."""
    app = FastAPI()

    @app.get("/{name}")
    async def get(name: str, request: Request) -> Response:
        data = files[name]
        rng = request.headers.get("range", "")
        seen.append((name, rng))
        if name in cut_first:
            cut_first.discard(name)

            async def half():  # type: ignore[no-untyped-def]
                yield data[: len(data) // 2]
                raise ConnectionError("simulated network failure")

            from fastapi.responses import StreamingResponse
            return StreamingResponse(half(), headers={"content-length": str(len(data))})
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            return Response(data[start:], status_code=206,
                            headers={"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return Response(data)

    return app


def jbctl(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JB_", "NOMAD_", "CONSUL_"))}
    env["JB_STATE_DIR"] = str(tmp / "state")
    return subprocess.run([JBCTL, "--json", "models", *args], env=env, cwd=tmp, capture_output=True,
                          text=True, timeout=120, check=False)


def test_pull_resume_pin_verify_list(tmp_path: Path, serve) -> None:
    raw = tmp_path / "opus"
    standin_marian.write_opus_mt(raw, standin_marian.SIZES["tiny"])
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for p in raw.iterdir():
            z.write(p, p.name)
    tr = standin_transducer.build(tmp_path / "tr", "tiny")
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:bz2") as t:
        for p in tr.iterdir():
            t.add(p, f"release-1/{p.name.replace('encoder', 'encoder-epoch-9')}")
    files = {"opus.zip": zbuf.getvalue(), "tr.tar.bz2": tbuf.getvalue(), "voice.onnx": b"x" * 1000}
    seen: list[tuple[str, str]] = []
    with serve(file_server(files, {"opus.zip"}, seen)) as srv:
        sha = hashlib.sha256(files["tr.tar.bz2"]).hexdigest()
        manifest = tmp_path / "models" / "manifest.toml"
        manifest.parent.mkdir()
        manifest.write_text(f"""
[[models]]
name = "mt-standin"
service = "mt"
engine = "ctranslate2"
languages = ["en", "vi"]
license = "test"
convert = "opus-mt-int8"
expect = ["model.bin", "source.spm", "target.spm"]
[[models.files]]
url = "{srv.url}/opus.zip"
archive = "zip"

[[models]]
name = "stt-standin"
service = "stt"
engine = "sherpa-onnx"
languages = ["en"]
license = "test"
expect = ["encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt"]
[[models.files]]
url = "{srv.url}/tr.tar.bz2"
sha256 = "{sha}"
archive = "tar.bz2"
[models.files.extract]
'.*/encoder-epoch-\\d+\\.onnx' = "encoder.onnx"
'.*/decoder\\.onnx' = "decoder.onnx"
'.*/joiner\\.onnx' = "joiner.onnx"
'.*/tokens\\.txt' = "tokens.txt"

[[models]]
name = "bad-voice"
service = "tts"
engine = "piper"
languages = ["vi"]
license = "test"
expect = ["voice.onnx"]
[[models.files]]
url = "{srv.url}/voice.onnx"
sha256 = "{'0' * 64}"
""")
        dest = tmp_path / "models-dir"
        first = jbctl("pull", "mt-standin", "--pin-new", "--manifest", str(manifest), "--dest",
                      str(dest), tmp=tmp_path)
        assert first.returncode == 1, first.stderr
        assert (dest / ".downloads" / "mt-standin" / "opus.zip.part").exists()
        res = jbctl("pull", "--pin-new", "--manifest", str(manifest), "--dest", str(dest),
                    tmp=tmp_path)
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 1  # bad-voice's checksum
    summary = events[-1]
    assert summary["failed"] == ["bad-voice"]
    assert {p["model"] for p in summary["pulled"]} == {"mt-standin", "stt-standin"}
    resumed = [r for name, r in seen if name == "opus.zip" and r.startswith("bytes=")]
    assert resumed and resumed[0] != "bytes=0-", f"download did not resume: {seen}"
    pinned = [e for e in events if e.get("event") == "pinned"]
    assert [e["model"] for e in pinned] == ["mt-standin"] and pinned[0]["files"] == ["opus.zip"]
    failure = next(e for e in events if e.get("event") == "failed")
    assert "sha256" in failure["error"] and "voice.onnx" in failure["error"]
    lock = json.loads((manifest.parent / "manifest.lock.json").read_text())
    assert lock["mt-standin"]["downloads"]["opus.zip"]["sha256"] == \
        hashlib.sha256(files["opus.zip"]).hexdigest()
    import ctranslate2

    ctranslate2.Translator(str(dest / "mt-standin"))  # the conversion produced a loadable model
    assert (dest / "stt-standin" / "encoder.onnx").read_bytes() == (tr / "encoder.onnx").read_bytes()

    ok = jbctl("verify", "mt-standin", "stt-standin", "--manifest", str(manifest), "--dest", str(dest),
               tmp=tmp_path)
    assert ok.returncode == 0, ok.stdout
    (dest / "stt-standin" / "tokens.txt").write_text("tampered")
    bad = jbctl("verify", "--manifest", str(manifest), "--dest", str(dest), tmp=tmp_path)
    assert bad.returncode == 1
    problems = {m["model"]: m["problems"] for m in json.loads(bad.stdout)["models"]}
    assert problems["stt-standin"] == ["tokens.txt: checksum differs from the lock"]
    assert problems["bad-voice"] == ["missing voice.onnx"]
    listed = json.loads(jbctl("list", "--manifest", str(manifest), "--dest", str(dest),
                              tmp=tmp_path).stdout)
    assert {m["name"]: m["installed"] for m in listed["models"]} == {
        "mt-standin": True, "stt-standin": True, "bad-voice": False}
    assert jbctl("pull", "nope", "--manifest", str(manifest), "--dest", str(dest),
                 tmp=tmp_path).returncode == 2


def test_real_manifest_lists_every_service(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    res = jbctl("list", "--manifest", str(root / "models" / "manifest.toml"), "--dest",
                str(tmp_path), tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    models = json.loads(res.stdout)["models"]
    assert {m["service"] for m in models} == {"stt", "mt", "tts"}
    langs = {(m["service"], lang) for m in models for lang in m["languages"]}
    assert {("stt", "vi"), ("stt", "en"), ("mt", "vi"), ("mt", "en"), ("tts", "vi"),
            ("tts", "en")} <= langs


def test_dev_fills_a_folder_the_services_can_use(tmp_path: Path) -> None:
    res = jbctl("dev", "--dest", str(tmp_path / "m"), tmp=tmp_path)
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout)["models"]
    assert done["en_US-joe-medium"] == "real (PyPI)" and done["opus-mt-en-vi-standin"] == "stand-in"


def _prod(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JB_", "NOMAD_", "CONSUL_"))}
    env["JB_STATE_DIR"] = str(tmp / "state")
    return subprocess.run([JBCTL, "--json", "--env", "prod", "models", *args], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120, check=False)


def _failure(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.stdout, res.stderr)
    return str(next(json.loads(line) for line in res.stdout.splitlines()
                    if json.loads(line).get("event") == "failed")["error"])


def test_prod_trusts_no_first_download(tmp_path: Path, serve) -> None:
    """A hub (or whoever sits between it and the controller) serving other bytes than were pinned,
    from the operator's side (jbctl --env prod, as jb_app runs it): nothing unpinned is even
    downloaded without --pin-new; what
    --pin-new pinned, later pulls hold to; a manifest pin holds; an archive cannot write outside
    the model's folder."""
    good, evil = b"weights v1" * 100, b"weights, tampered" * 100
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("release/ok.bin", b"fine")
        z.writestr("release/../../escaped.txt", b"outside")
    files = {"voice.onnx": good, "pinned.onnx": evil, "evil.zip": zbuf.getvalue()}
    seen: list[tuple[str, str]] = []
    with serve(file_server(files, set(), seen)) as srv:
        manifest = tmp_path / "models" / "manifest.toml"
        manifest.parent.mkdir()
        entry = ('[[models]]\nname = "{name}"\nservice = "tts"\nengine = "piper"\n'
                 'languages = ["vi"]\nlicense = "test"\nexpect = {expect}\n'
                 '[[models.files]]\nurl = "{url}"\nsha256 = "{sha}"\n{extra}\n')
        manifest.write_text(
            entry.format(name="voice", expect='["voice.onnx"]', url=f"{srv.url}/voice.onnx",
                         sha="", extra="")
            + entry.format(name="pinned", expect='["pinned.onnx"]', sha=hashlib.sha256(
                good).hexdigest(), url=f"{srv.url}/pinned.onnx", extra="")
            + entry.format(name="evil", expect='["ok.bin"]', url=f"{srv.url}/evil.zip", sha="",
                           extra='archive = "zip"'))
        dest = tmp_path / "models-dir"
        args = ("--manifest", str(manifest), "--dest", str(dest))

        error = _failure(_prod("pull", "voice", *args, tmp=tmp_path))
        assert "voice.onnx" in error and "--pin-new" in error, error
        error = _failure(jbctl("pull", "voice", *args, tmp=tmp_path))  # nor without --env prod
        assert "voice.onnx" in error and "--pin-new" in error, error
        assert seen == [] and not (dest / "voice").exists()  # not even downloaded

        pinned = _prod("pull", "voice", "--pin-new", *args, tmp=tmp_path)
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        lock = json.loads((manifest.parent / "manifest.lock.json").read_text())
        assert lock["voice"]["downloads"]["voice.onnx"]["sha256"] == hashlib.sha256(good).hexdigest()
        assert (dest / "voice" / "voice.onnx").read_bytes() == good

        # the hub now serves other bytes; a fresh controller (no download cache) pulls again
        files["voice.onnx"] = evil
        shutil.rmtree(dest)
        error = _failure(_prod("pull", "voice", *args, tmp=tmp_path))
        assert "voice.onnx" in error and "manifest.lock.json" in error
        assert hashlib.sha256(evil).hexdigest() in error and hashlib.sha256(good).hexdigest() in error
        assert not (dest / "voice").exists()
        # --pin-new does not overrule an existing pin
        error = _failure(_prod("pull", "voice", "--pin-new", *args, tmp=tmp_path))
        assert hashlib.sha256(good).hexdigest() in error

        error = _failure(_prod("pull", "pinned", *args, tmp=tmp_path))
        assert "pinned.onnx" in error and "the manifest" in error
        assert hashlib.sha256(evil).hexdigest() in error and hashlib.sha256(good).hexdigest() in error
        assert not (dest / "pinned").exists()

        error = _failure(_prod("pull", "evil", "--pin-new", *args, tmp=tmp_path))
        assert "outside" in error, error
        assert not list(tmp_path.rglob("escaped.txt"))
