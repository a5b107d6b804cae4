"""The local dev cluster: a real ``consul agent -dev`` and ``nomad agent -dev`` on loopback.

State, logs and host volumes live in a per-user folder (``$JB_STATE_DIR/cluster``). ``up`` is
idempotent, ``down`` stops the jobs, the agents and every task process they left, and unmounts
what the Nomad client mounted. Configs and argv come from ``devcluster_config``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jbcalling.cli import devcluster_config as cfg
from jbcalling.cli.errors import DevClusterError
from jbcalling.cli.settings import CliSettings

Say = Callable[[str], None]


@dataclass
class DevCluster:
    settings: CliSettings

    @property
    def ports(self) -> cfg.Ports:
        return cfg.Ports.with_offset(self.settings.dev_port_offset)

    @property
    def layout(self) -> cfg.Layout:
        return cfg.layout_for(self.settings.state_dir, self.settings.dev_port_offset)

    @property
    def nomad_addr(self) -> str:
        return f"http://127.0.0.1:{self.ports.nomad_http}"

    @property
    def consul_addr(self) -> str:
        return f"http://127.0.0.1:{self.ports.consul_http}"

    def urls(self) -> dict[str, str]:
        return {"nomad_ui": f"{self.nomad_addr}/ui/", "consul_ui": f"{self.consul_addr}/ui/",
                "nomad_addr": self.nomad_addr, "consul_http_addr": self.consul_addr}

    def token(self) -> str:
        return self.layout.token.read_text().strip() if self.layout.token.exists() else ""

    # ---- status --------------------------------------------------------------------------
    def _pids(self) -> dict[str, Any]:
        try:
            return json.loads(self.layout.pids.read_text())
        except (OSError, ValueError):
            return {}

    def status(self) -> dict[str, Any]:
        pids = self._pids()
        agents = {}
        for name in ("consul", "nomad"):
            pid = pids.get(name, {}).get("pid")
            agents[name] = {"pid": pid, "alive": bool(pid) and _alive(pid)}
        up = all(a["alive"] for a in agents.values()) and self._answers()
        return {"running": up, "agents": agents, "state_dir": str(self.layout.root),
                "acl": bool(pids.get("acl")), **self.urls()}

    def _answers(self) -> bool:
        try:
            return bool(httpx.get(f"{self.consul_addr}/v1/status/leader", timeout=2).json()) and \
                bool(httpx.get(f"{self.nomad_addr}/v1/status/leader", timeout=2).json())
        except (httpx.HTTPError, ValueError):
            return False

    # ---- up ------------------------------------------------------------------------------
    def up(self, say: Say, acl: bool = False) -> dict[str, Any]:
        current = self.status()
        if current["running"]:
            say("dev cluster already running")
            return current
        if any(a["alive"] for a in current["agents"].values()):
            say("a previous dev cluster is half up: stopping it first")
            self.down(say)
        nomad_bin, consul_bin = find_binary("nomad"), find_binary("consul")
        self._check_ports()
        lay = self.layout
        for d in (lay.root, lay.logs, *(lay.volume(v) for v in cfg.HOST_VOLUMES)):
            d.mkdir(parents=True, exist_ok=True)
        _clean_dir(lay.nomad_data)
        lay.token.unlink(missing_ok=True)
        lay.nomad_config.write_text(cfg.nomad_config(self.ports, lay, acl))

        say(f"starting consul ({consul_bin})")
        consul = _spawn(cfg.consul_argv(consul_bin, self.ports, lay), lay.logs / "consul.log")
        pids: dict[str, Any] = {"consul": {"pid": consul.pid}, "acl": acl,
                                "offset": self.settings.dev_port_offset}
        lay.pids.write_text(json.dumps(pids))
        self._wait(say, "consul leader", consul, lay.logs / "consul.log",
                   lambda: bool(httpx.get(f"{self.consul_addr}/v1/status/leader", timeout=2).json()))

        say(f"starting nomad ({nomad_bin})")
        nomad = _spawn(cfg.nomad_argv(nomad_bin, lay), lay.logs / "nomad.log")
        pids["nomad"] = {"pid": nomad.pid}
        lay.pids.write_text(json.dumps(pids))
        self._wait(say, "nomad leader", nomad, lay.logs / "nomad.log",
                   lambda: bool(httpx.get(f"{self.nomad_addr}/v1/status/leader", timeout=2).json()))
        if acl:
            resp = httpx.post(f"{self.nomad_addr}/v1/acl/bootstrap", timeout=10)
            resp.raise_for_status()
            lay.token.write_text(resp.json()["SecretID"])
            lay.token.chmod(0o600)
            say(f"ACLs bootstrapped; management token in {lay.token}")
        headers = {"X-Nomad-Token": self.token()} if acl else {}
        self._wait(say, "nomad client ready and registered in consul", nomad,
                   lay.logs / "nomad.log", lambda: self._client_ready(headers))
        return self.status()

    def _client_ready(self, headers: dict[str, str]) -> bool:
        nodes = httpx.get(f"{self.nomad_addr}/v1/nodes", headers=headers, timeout=2).json()
        if not any(n.get("Status") == "ready" for n in nodes):
            return False
        services = httpx.get(f"{self.consul_addr}/v1/catalog/services", timeout=2).json()
        return "nomad-client" in services

    def _wait(self, say: Say, what: str, proc: subprocess.Popen[bytes], log: Path,
              ready: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DevClusterError(
                    f"{log.stem} exited with code {proc.returncode} while waiting for {what}",
                    hint=f"see {log}", details=_tail(log))
            try:
                if ready():
                    say(f"{what}: ok")
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.25)
        raise DevClusterError(f"timed out after {timeout:.0f} s waiting for {what}",
                              hint=f"see {log}", details=_tail(log))

    def _check_ports(self) -> None:
        for name, port in self.ports.named().items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    raise DevClusterError(
                        f"port {port} ({name.replace('_', ' ')}) on 127.0.0.1 is taken by "
                        "another process",
                        hint="stop that process, or set JB_DEV_PORT_OFFSET (e.g. 10000) to run "
                             "a second cluster beside it") from None

    # ---- down ----------------------------------------------------------------------------
    def down(self, say: Say) -> dict[str, Any]:
        pids = self._pids()
        if pids.get("nomad") and _alive(pids["nomad"]["pid"]):
            self._stop_jobs(say)
        for name in ("nomad", "consul"):
            pid = pids.get(name, {}).get("pid")
            if pid and _alive(pid):
                say(f"stopping {name} (pid {pid})")
                _terminate([pid])
        leftovers = _processes_under(self.layout.root)
        if leftovers:
            say(f"stopping {len(leftovers)} task process(es) the agents left")
            _terminate(leftovers)
        _unmount_under(self.layout.root)
        _clean_dir(self.layout.nomad_data)
        self.layout.pids.unlink(missing_ok=True)
        self.layout.token.unlink(missing_ok=True)
        say("dev cluster stopped")
        return {"running": False, "state_dir": str(self.layout.root)}

    def _stop_jobs(self, say: Say) -> None:
        headers = {"X-Nomad-Token": self.token()} if self.token() else {}
        try:
            jobs = httpx.get(f"{self.nomad_addr}/v1/jobs", headers=headers, timeout=5).json()
            for job in jobs:
                say(f"stopping job {job['ID']}")
                httpx.delete(f"{self.nomad_addr}/v1/job/{job['ID']}", params={"purge": "true"},
                             headers=headers, timeout=5)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                allocs = httpx.get(f"{self.nomad_addr}/v1/allocations", headers=headers,
                                   timeout=5).json()
                if all(a["ClientStatus"] not in ("running", "pending") for a in allocs):
                    return
                time.sleep(0.5)
        except (httpx.HTTPError, ValueError):
            say("nomad did not answer: its tasks are stopped by signal instead")


def find_binary(name: str) -> str:
    override = os.environ.get(f"JB_{name.upper()}_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise DevClusterError(f"JB_{name.upper()}_BIN={override} is not an executable file",
                                  hint=f"point it at a {name} binary or unset it")
        return override
    found = shutil.which(name)
    if found:
        return found
    cache = Path(os.environ.get("JB_CACHE", Path.home() / ".cache" / "jbcalling")) / "bin" / name
    if os.access(cache, os.X_OK):
        return str(cache)
    raise DevClusterError(f"no {name} binary: not in JB_{name.upper()}_BIN, on PATH, or in {cache}",
                          hint="run `bash tools/setup.sh` (it builds Nomad and Consul), "
                               f"or set JB_{name.upper()}_BIN")


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # A session of its own: the agents outlive jbctl and ignore the terminal's Ctrl-C.
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _terminate(pids: list[int], grace: float = 10) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _processes_under(root: Path) -> list[int]:
    """Processes whose command line or working directory lies under ``root``."""
    needle = str(root)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(int(entry.name))
    return found


def _unmount_under(root: Path) -> None:
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mnt in sorted((m for m in mounts if m.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)


def _clean_dir(path: Path) -> None:
    if path.exists():
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def _tail(log: Path, lines: int = 15) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []
