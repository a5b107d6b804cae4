"""Three local test nodes that stand in for the production VMs of inventory.ini.

Each node is a network namespace on a bridge that the test creates (addresses from
10.213.0.0/16 that exist only inside the test; the bridge's own address is the controller's,
where the play, jbctl, the browser and the test's clients run). What differs from a VM, and why:

- The play runs on the test host with a local connection and a root prefix per node
  (``jb_root_prefix``): every file it writes lands under ``<tmp>/<node>/``. Kernel state (the
  nftables ruleset, sysctls) is applied inside the node's namespace through
  ``jb_node_command_prefix`` (``ip netns exec <ns>``).
- The node's agents run in a mount namespace of their own in which ``/opt`` is a fresh tmpfs and
  ``/opt/jbcalling`` is the node's ``<tmp>/<node>/opt/jbcalling``: each node sees its own release
  venvs and volumes at the production paths, so the job files run unchanged.
- There is no systemd: a supervisor thread per agent starts it once the play has written its
  configuration and starts it again whenever it exits (``Restart=always``); the play's restart
  handlers run ``restart-agent`` (``jb_*_restart_command``), which stops the agent's process.
- Tasks run with raw_exec: Nomad's exec driver builds a chroot per allocation, copying the release
  venv (about a gigabyte per node here), which the 2-core test machine cannot afford.

Everything started (agents, tasks, namespaces, links, cgroups) is removed at the end, also on
failure. Needs root, iproute2, nftables and the Nomad/Consul binaries of tools/setup.sh.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from jbcalling.cli.devcluster import _terminate, _unmount_under

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
HOSTS = {"translation01": "edge", "translation02": "ai", "translation03": "tts"}
VCPUS = {"translation01": 4, "translation02": 8, "translation03": 4}
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
AGENTS = ("consul", "nomad")

# The agent's own mount namespace: /opt is the node's (see the module docstring).
_NODE_MOUNTS = ('set -e; mkdir -p "$JB_NODE_ROOT/opt/jbcalling"; mount -t tmpfs jbnode /opt; '
                'mkdir -p /opt/jbcalling; mount --bind "$JB_NODE_ROOT/opt/jbcalling" /opt/jbcalling; '
                'exec "$@"')


def run(argv: list[str], check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


@dataclass
class Supervised:
    """One agent kept running as systemd's Restart=always would."""

    name: str
    argv: list[str]
    log: Path
    pidfile: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    stopping: bool = False
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=out, start_new_session=True)
            self.starts += 1
            self.pidfile.write_text(str(self.proc.pid))
            self.proc.wait()
            time.sleep(0.5)  # RestartSec

    def stop(self) -> None:
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.thread:
            self.thread.join(10)


@dataclass
class Nodes:
    tmp: Path
    tag: str
    subnet: str  # e.g. "10.213.57"
    agents: dict[str, Supervised] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    recaps: list[dict[str, tuple[int, int, int, int]]] = field(default_factory=list)
    extra_vars: dict[str, Any] = field(default_factory=dict)

    # ---- layout --------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host[-2:]}"

    def addr(self, host: str) -> str:
        return f"{self.subnet}.{10 + int(host[-2:])}"

    @property
    def controller(self) -> str:
        """The test host's address on the bridge: the operator's machine."""
        return f"{self.subnet}.1"

    def root(self, host: str) -> Path:
        return self.tmp / host

    @property
    def secrets(self) -> Path:
        return self.tmp / "secrets"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def in_node(self, host: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *argv]

    # ---- network namespaces --------------------------------------------------------------
    def create_network(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.controller}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for host in HOSTS:
            self._create_node_network(host)

    def _create_node_network(self, host: str) -> None:
        ns, veth = self.ns(host), f"{self.tag}v{host[-1]}"
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        # No default route: the node reaches the bridge's /24 and nothing else, so that no
        # agent's probe (e.g. Nomad's cloud metadata fingerprints) leaves the machine.
        for cmd in (["ip", "addr", "add", f"{self.addr(host)}/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
            run(self.in_node(host, *cmd))

    def destroy_network(self) -> None:
        for host in HOSTS:
            self.kill_node(host)
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def kill_node(self, host: str) -> None:
        """Every process of the node (agents, task executors, tasks): the VM is gone."""
        for agent in AGENTS:
            sup = self.agents.pop(f"{host}-{agent}", None)
            if sup:
                sup.stop()
        res = subprocess.run(["ip", "netns", "pids", self.ns(host)], capture_output=True,
                             text=True, check=False)
        pids = [int(p) for p in res.stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _terminate(pids, grace=5)

    def power_off(self, host: str) -> None:
        """The VM is gone: its processes killed and its network link cut."""
        self.kill_node(host)
        run(["ip", "link", "set", f"{self.tag}v{host[-1]}", "down"])

    def power_on(self, host: str) -> None:
        """The VM boots again: link up, its agents started from their configuration."""
        run(["ip", "link", "set", f"{self.tag}v{host[-1]}", "up"])
        for agent in AGENTS:
            self.start_agent(host, agent)

    # ---- ansible -------------------------------------------------------------------------
    def write_inventory(self) -> Path:
        lines = ["[jbcalling]"]
        for host, role in HOSTS.items():
            lines.append(
                f"{host} ansible_connection=local ansible_python_interpreter={sys.executable} "
                f"jb_node_address={self.addr(host)} jb_public_address={self.addr(host)} "
                f"jb_node_role={role} jb_node_vcpus={VCPUS[host]} jb_root_prefix={self.root(host)} "
                f"jb_nomad_cgroup_parent={self.tag}-{host} jb_test_netns={self.ns(host)}")
        for group in ("consul_servers", "nomad_servers", "nomad_clients"):
            lines += ["", f"[{group}]", *HOSTS]
        lines += ["", "[edge]", "translation01", ""]
        path = self.tmp / "inventory.ini"
        path.write_text("\n".join(lines))
        return path

    def write_restart_script(self) -> Path:
        """The play's restart handlers run this in place of `systemctl restart <agent>`."""
        script = self.tmp / "restart-agent"
        script.write_text(f"""#!/bin/sh
# restart-agent AGENT HOST: stop the agent; its supervisor starts it again (Restart=always)
set -eu
pid=$(cat "{self.tmp}/pids/$2-$1.pid")
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
kill -KILL "$pid"
""")
        script.chmod(0o755)
        (self.tmp / "pids").mkdir(exist_ok=True)
        return script

    def write_extra_vars(self, values: dict[str, Any]) -> Path:
        self.extra_vars.update(values)
        path = self.tmp / "test-vars.json"
        path.write_text(json.dumps(self.extra_vars, indent=1))
        return path

    def play(self, *args: str, label: str, extra: dict[str, Any] | None = None,
             ) -> dict[str, tuple[int, int, int, int]]:
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(self.tmp / "ansible-home"),
               "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-tmp"),
               "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        start = time.monotonic()
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.tmp / "inventory.ini"),
                "-e", f"@{self.tmp / 'test-vars.json'}", str(ANSIBLE_DIR / "site.yml"), *args]
        if extra:
            (self.tmp / f"vars-{label}.json").write_text(json.dumps(extra))
            argv[5:5] = ["-e", f"@{self.tmp / f'vars-{label}.json'}"]
        # the log gets each line's time since the start: where a slow play spends it
        lines: list[str] = []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, cwd=ROOT) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(f"{time.monotonic() - start:7.1f} {line}")
            rc = proc.wait(900)
        self.timings[f"play_{label}_s"] = round(time.monotonic() - start, 1)
        (self.tmp / f"play-{label}.log").write_text("".join(lines))
        out = "".join(line[8:] for line in lines)
        assert rc == 0, f"play {label} failed:\n{out[-8000:]}"
        recap = {m[0]: (int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in RECAP.findall(out)}
        self.recaps.append(recap)
        return recap

    # ---- agents --------------------------------------------------------------------------
    def config_of(self, host: str, agent: str) -> Path:
        return self.root(host) / ("etc/consul.d/consul.hcl" if agent == "consul" else "etc/nomad.d/nomad.hcl")

    def start_agent(self, host: str, agent: str) -> None:
        root = self.root(host)
        if agent == "consul":
            cmd = [str(root / "usr/local/bin/consul"), "agent", f"-config-dir={root}/etc/consul.d"]
        else:
            cmd = [str(root / "usr/local/bin/nomad"), "agent", f"-config={root}/etc/nomad.d"]
        argv = self.in_node(host, "/usr/bin/env", f"JB_NODE_ROOT={root}", "unshare", "--mount",
                            "--propagation", "private", "/bin/sh", "-c", _NODE_MOUNTS, "node", *cmd)
        sup = Supervised(f"{host}-{agent}", argv, self.tmp / f"{host}-{agent}.log",
                         self.tmp / "pids" / f"{host}-{agent}.pid")
        self.agents[sup.name] = sup
        sup.start()

    def start_agents_when_configured(self, done: threading.Event) -> None:
        """What systemd does on a VM: start each agent once the play has written its config."""
        waiting = [(h, a) for a in AGENTS for h in HOSTS]
        while waiting and not done.is_set():
            for host, agent in list(waiting):
                # the play writes binaries and certificates before the config (atomic renames)
                if self.config_of(host, agent).exists():
                    self.start_agent(host, agent)
                    waiting.remove((host, agent))
            time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.tmp.glob("translation0*-*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def cleanup(self) -> None:
        for sup in list(self.agents.values()):
            sup.stop()
        self.destroy_network()
        _unmount_under(self.tmp)
        for host in HOSTS:
            for cg in Path("/sys/fs/cgroup").glob(f"*/{self.tag}-{host}"):
                for sub in sorted(cg.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                    if sub.is_dir():
                        subprocess.run(["rmdir", str(sub)], capture_output=True, check=False)
                subprocess.run(["rmdir", str(cg)], capture_output=True, check=False)


# ---- HTTP helpers ---------------------------------------------------------------------------
@dataclass
class Api:
    nodes: Nodes

    def secret(self, rel: str) -> str:
        return (self.nodes.secrets / rel).read_text().strip()

    def tls(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.nodes.secrets / "ca/ca.pem"))
        if client_cert:
            ctx.load_cert_chain(self.nodes.secrets / "nomad/cli.pem", self.nodes.secrets / "nomad/cli.key")
        return ctx

    def consul(self, host: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        token = token if token is not None else self.secret("consul/initial-management.token")
        return httpx.request(kw.pop("method", "GET"), f"https://{self.nodes.addr(host)}:8501{path}",
                             headers={"X-Consul-Token": token}, verify=self.tls(),
                             timeout=kw.pop("timeout", 5), **kw)

    def nomad(self, host: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        token = token if token is not None else self.secret("nomad/bootstrap.token")
        with httpx.Client(verify=self.tls(client_cert=True), timeout=kw.pop("timeout", 5)) as client:
            return client.request(kw.pop("method", "GET"), f"https://{self.nodes.addr(host)}:4646{path}",
                                  headers={"X-Nomad-Token": token}, **kw)


def wait_for(what: str, check: Callable[[], Any], timeout: float, nodes: Nodes,
             every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, ValueError, KeyError, OSError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})\n"
                         + nodes.log_tail())


def exactly(n: int, items: list[Any]) -> list[Any] | None:
    return items if len(items) == n else None


def free_subnet() -> str:
    routes = run(["ip", "-4", "route"]).stdout + run(["ip", "-4", "addr"]).stdout
    for third in range(40 + os.getpid() % 150, 250):
        if f"10.213.{third}." not in routes:
            return f"10.213.{third}"
    raise AssertionError("no free 10.213.x.0/24 subnet for the test hosts")


def jbctl_env(nodes: Nodes) -> dict[str, str]:
    """jbctl as an operator runs it: the environment the play wrote (ansible/.secrets/.../jbctl.env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JB_", "NOMAD_", "CONSUL_"))}
    for line in (nodes.secrets / "jbctl.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["JB_STATE_DIR"] = str(nodes.tmp / "jbstate")
    return env


def jbctl(nodes: Nodes, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
          ) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "jbctl"), "--env", "prod", *args], check=False, cwd=ROOT,
               env=env or jbctl_env(nodes), timeout=timeout)
