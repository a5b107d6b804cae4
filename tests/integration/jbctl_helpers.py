"""Run the real `jbctl` against a real dev cluster started for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
JBCTL = str(Path(sys.executable).parent / "jbctl")
OFFSET = 10000  # beside a developer's cluster on the default ports


@dataclass
class Cluster:
    env: dict[str, str]
    state_dir: Path
    offset: int = OFFSET

    @property
    def nomad(self) -> str:
        return f"http://127.0.0.1:{4646 + self.offset}"

    @property
    def consul(self) -> str:
        return f"http://127.0.0.1:{8500 + self.offset}"

    @property
    def token(self) -> str:
        return (self.state_dir / f"cluster-{self.offset}" / "nomad-token").read_text().strip()

    def jbctl(self, *args: str, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([JBCTL, *args], env={**self.env, **(env or {})}, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def jbctl_json(self, *args: str) -> Any:
        res = self.jbctl("--json", *args)
        assert res.returncode in (0, 1), res.stderr
        return json.loads(res.stdout)

    def nomad_get(self, path: str) -> Any:
        resp = httpx.get(self.nomad + path, headers={"X-Nomad-Token": self.token}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def passing(self, service: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.consul}/v1/health/service/{service}", params={"passing": "1"},
                         timeout=10)
        return resp.json()

    def urls(self, service: str) -> list[str]:
        return [f"http://{i['Service']['Address']}:{i['Service']['Port']}"
                for i in self.passing(service)]


def base_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOMAD_", "CONSUL_", "JB_")) or k in ("JB_NOMAD_BIN", "JB_CONSUL_BIN",
                                                                      "JB_CACHE")}
    env.update({"JB_STATE_DIR": str(state_dir), "JB_DEV_PORT_OFFSET": str(OFFSET),
                "JB_DEPLOY_TIMEOUT_S": "180", "NO_COLOR": "1", "COLUMNS": "200"})
    return env


def task_pids(needle: str, cwd_under: str) -> list[int]:
    """Live processes whose command line has ``needle`` and whose working directory is under
    ``cwd_under`` (raw_exec runs a task in its allocation's task dir: /alloc/<id>/ or the
    cluster's state dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if needle in cmd and cwd_under in cwd + "/" and not _zombie(entry):
                pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and not _zombie(Path(f"/proc/{pid}"))


def _zombie(proc: Path) -> bool:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
