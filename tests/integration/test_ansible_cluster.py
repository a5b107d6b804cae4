"""The Ansible roles, run for real against three local test hosts, then the cluster they make.

Three network namespaces (one per node of inventory.ini, on a bridge this test creates, with
addresses from 10.213.0.0/16 that exist only inside this test) stand in for the three VMs. The
play runs with a local connection and a root prefix per host (ansible/ is unchanged: the test
only sets variables), so every file lands under <tmp>/<host>/. Then, as systemd would on a VM,
the test starts each node's Consul and Nomad agents in its namespace from the rendered files,
lets the play bootstrap the ACLs, checks idempotence, talks to the cluster with `jbctl` over TLS
with the token the play wrote, and kills one node.

Everything this test starts (agents, tasks, namespaces, links, mounts) is removed at the end,
also on failure. Needs root, iproute2 and the Nomad/Consul binaries of tools/setup.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from jbcalling.cli.devcluster import _terminate, _unmount_under, find_binary

# Two plays with real pip installs into three release venvs come before the first test (the
# first run alone took 393 s on a loaded 2-core machine).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
HOSTS = {"translation01": "edge", "translation02": "ai", "translation03": "tts"}
VERSION = re.search(r'(?m)^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text())[1]  # type: ignore[index]
# the extras each role installs (jb_app_extras_by_role) and a module that only they bring
EXTRAS = {"edge": "gateway,signaling", "ai": "mt,stt", "tts": "tts"}
EXTRA_MODULES = {"edge": "aiortc, jwt", "ai": "sherpa_onnx, ctranslate2", "tts": "piper"}
VCPUS = {"translation01": 4, "translation02": 8, "translation03": 4}
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def _run(argv: list[str], check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


@dataclass
class LocalHosts:
    tmp: Path
    tag: str
    subnet: str  # e.g. "10.213.57"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    agents_started: float = 0.0
    recaps: list[dict[str, tuple[int, int, int, int]]] = field(default_factory=list)

    # ---- layout --------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host[-2:]}"

    def addr(self, host: str) -> str:
        return f"{self.subnet}.{10 + int(host[-2:])}"

    def root(self, host: str) -> Path:
        return self.tmp / host

    @property
    def secrets(self) -> Path:
        return self.tmp / "secrets"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    # ---- network namespaces --------------------------------------------------------------
    def create_network(self) -> None:
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for host in HOSTS:
            ns, veth = self.ns(host), f"{self.tag}v{host[-1]}"
            _run(["ip", "netns", "add", ns])
            _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
            for cmd in (["ip", "addr", "add", f"{self.addr(host)}/24", "dev", "eth0"],
                        ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                        ["ip", "route", "add", "default", "via", f"{self.subnet}.1"]):
                _run(["ip", "netns", "exec", ns, *cmd])

    def destroy_network(self) -> None:
        for host in HOSTS:
            self.kill_node(host)
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def kill_node(self, host: str) -> None:
        """Every process of the node (agents, task executors, tasks): the VM is gone."""
        for name in (f"{host}-nomad", f"{host}-consul"):
            proc = self.procs.pop(name, None)
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        res = subprocess.run(["ip", "netns", "pids", self.ns(host)], capture_output=True,
                             text=True, check=False)
        pids = [int(p) for p in res.stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _terminate(pids, grace=5)

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

    def write_extra_vars(self) -> Path:
        # What differs from a VM: no packages, users or systemd; binaries from the local build;
        # raw_exec on so that the failover job needs no chroot; kernel state (nftables, the
        # namespace's sysctls) applied inside each node's namespace; the test host reaches the
        # APIs from the bridge's address, as an operator's network would.
        extra = {
            "ansible_become": False,
            "jb_node_command_prefix": ["ip", "netns", "exec", "{{ jb_test_netns }}"],
            "jb_base_admin_cidrs": [f"{self.subnet}.1/32"],
            "jb_secrets_dir": str(self.secrets),
            "jb_app_build_dir": str(self.tmp / "build"),
            "jb_consul_binary_src": find_binary("consul"),
            "jb_nomad_binary_src": find_binary("nomad"),
            "jb_consul_user": "root", "jb_consul_group": "root",
            "jb_base_manage_packages": False, "jb_base_manage_time_sync": False,
            "jb_base_manage_sysctl": True, "jb_base_manage_firewall": True,
            "jb_consul_manage_user": False, "jb_consul_manage_packages": False,
            "jb_consul_manage_service": False,
            "jb_nomad_manage_packages": False, "jb_nomad_manage_service": False,
            "jb_nomad_raw_exec_enabled": True,
            # the failover test kills the leader's node: its allocations move after this
            "jb_nomad_failover_heartbeat_ttl": "20s",
            "jb_app_manage_packages": False, "jb_app_manage_service": False,
            "jb_app_python": "/usr/bin/python3",
            "jb_turn_manage_packages": False, "jb_turn_manage_service": False,
            "jb_origin_manage_packages": False, "jb_origin_manage_service": False,
            "jb_origin_cert_mode": "selfsigned",
        }
        models = self.tmp / "models-src" / "tiny-model"
        models.mkdir(parents=True)
        (models / "model.txt").write_text("a stand-in for a model file\n")
        extra["jb_app_models_src"] = str(self.tmp / "models-src")
        path = self.tmp / "test-vars.json"
        path.write_text(json.dumps(extra))
        return path

    def play(self, *args: str, label: str) -> dict[str, tuple[int, int, int, int]]:
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(self.tmp / "ansible-home"),
               "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-tmp"),
               "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        start = time.monotonic()
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.tmp / "inventory.ini"),
                "-e", f"@{self.tmp / 'test-vars.json'}", str(ANSIBLE_DIR / "site.yml"), *args]
        # the log gets each line's time since the start: where a slow play spends it
        lines: list[str] = []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, cwd=ROOT) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(f"{time.monotonic() - start:7.1f} {line}")
            rc = proc.wait(600)
        self.timings[label] = round(time.monotonic() - start, 1)
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
            argv = [str(root / "usr/local/bin/consul"), "agent", f"-config-dir={root}/etc/consul.d"]
        else:
            argv = [str(root / "usr/local/bin/nomad"), "agent", f"-config={root}/etc/nomad.d"]
        log = open(self.tmp / f"{host}-{agent}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[f"{host}-{agent}"] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(host), *argv], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, start_new_session=True)
        log.close()

    def start_agents_when_configured(self, done: threading.Event) -> None:
        """What systemd does on a VM: start each agent once the play has written its config."""
        waiting = [(h, a) for a in ("consul", "nomad") for h in HOSTS]
        first = 0.0
        while waiting and not done.is_set():
            for host, agent in list(waiting):
                # the play writes binaries and certificates before the config (atomic renames)
                if self.config_of(host, agent).exists():
                    self.start_agent(host, agent)
                    waiting.remove((host, agent))
                    first = first or time.monotonic()
            time.sleep(0.2)
        self.agents_started = first
        # formation: both leaders elected (these two endpoints need no token)
        api = Api(self)
        while not done.is_set() and not waiting:
            try:
                if api.consul("translation01", "/v1/status/leader", token="").json() and \
                        api.nomad("translation01", "/v1/status/leader", token="").json():
                    self.timings["leaders_elected_s"] = round(time.monotonic() - first, 1)
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)

    def log_tail(self) -> str:
        out = []
        for log in sorted(self.tmp.glob("translation0*-*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def cleanup(self) -> None:
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
    bed: LocalHosts

    def secret(self, rel: str) -> str:
        return (self.bed.secrets / rel).read_text().strip()

    def tls(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.bed.secrets / "ca/ca.pem"))
        if client_cert:
            ctx.load_cert_chain(self.bed.secrets / "nomad/cli.pem", self.bed.secrets / "nomad/cli.key")
        return ctx

    def consul(self, host: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        token = token if token is not None else self.secret("consul/initial-management.token")
        return httpx.request(kw.pop("method", "GET"), f"https://{self.bed.addr(host)}:8501{path}",
                             headers={"X-Consul-Token": token}, verify=self.tls(), timeout=5, **kw)

    def nomad(self, host: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        token = token if token is not None else self.secret("nomad/bootstrap.token")
        with httpx.Client(verify=self.tls(client_cert=True), timeout=5) as client:
            return client.request(kw.pop("method", "GET"), f"https://{self.bed.addr(host)}:4646{path}",
                                  headers={"X-Nomad-Token": token}, **kw)


def wait_for(what: str, check: Callable[[], Any], timeout: float, bed: LocalHosts) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})\n"
                         + bed.log_tail())


def exactly(n: int, items: list[Any]) -> list[Any] | None:
    return items if len(items) == n else None


def _free_subnet() -> str:
    routes = _run(["ip", "-4", "route"]).stdout + _run(["ip", "-4", "addr"]).stdout
    for third in range(40 + os.getpid() % 150, 250):
        if f"10.213.{third}." not in routes:
            return f"10.213.{third}"
    raise AssertionError("no free 10.213.x.0/24 subnet for the test hosts")


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("this test needs root and iproute2 (network namespaces): run it as CI does")
    b = LocalHosts(tmp_path_factory.mktemp("ansible"), f"jbt{os.getpid() % 10000}", _free_subnet())
    try:
        b.create_network()
        b.write_inventory()
        b.write_extra_vars()
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def cluster(bed: LocalHosts) -> Api:
    """The play, with the test as each node's systemd; then the play again (idempotence).

    On a VM the play's handlers start the agents through systemd; here the units are only
    rendered, so a thread starts each node's agent as soon as the play has written its config,
    while the play goes on to bootstrap the ACLs against them.
    """
    api = Api(bed)
    done = threading.Event()
    starter = threading.Thread(target=bed.start_agents_when_configured, args=(done,), daemon=True)
    starter.start()
    try:
        bed.play(label="first")
    finally:
        done.set()
        starter.join(10)
    assert len(bed.procs) == 6, "the play did not write every agent's config"
    wait_for("a Consul leader", lambda: api.consul("translation01", "/v1/status/leader").json(),
             60, bed)
    bed.play(label="second")
    return api


# ---- the tests, in order ------------------------------------------------------------------
def test_play_renders_configs_the_real_binaries_accept(bed: LocalHosts, cluster: Api) -> None:
    for host, role in HOSTS.items():
        root = bed.root(host)
        _run([str(root / "usr/local/bin/consul"), "validate", str(root / "etc/consul.d")])
        _run([str(root / "usr/local/bin/nomad"), "config", "validate", str(root / "etc/nomad.d")])
        nomad_hcl = (root / "etc/nomad.d/nomad.hcl").read_text()
        assert f'jb_role = "{role}"' in nomad_hcl
        assert f"cpu_total_compute = {VCPUS[host] * 1000}" in nomad_hcl
        assert f'"{root}/opt/jbcalling/releases" = "/opt/jbcalling/releases"' in nomad_hcl
        consul_hcl = (root / "etc/consul.d/consul.hcl").read_text()
        assert "bootstrap_expect = 3" in consul_hcl
        for unit in ("consul.service", "nomad.service"):
            text = (root / "etc/systemd/system" / unit).read_text()
            assert f"ExecStart={root}/usr/local/bin/" in text
        # the release's venv holds the wheel and the role's extras, from the wheelhouse
        venv = root / "opt/jbcalling/releases" / VERSION
        _run([str(venv / "bin/python"), "-c", f"import jbcalling.common, {EXTRA_MODULES[role]}"])
        assert f"jbcalling[{EXTRAS[role]}]=={VERSION}" in (venv / "jbcalling-install.txt").read_text()
        # the firewall and the sysctls, applied inside the node's namespace
        ruleset = _run(["ip", "netns", "exec", bed.ns(host), "nft", "list", "ruleset"]).stdout
        assert "policy drop" in ruleset and 'comment "nomad-dynamic"' in ruleset
        assert ('comment "ingress-https"' in ruleset) == (role == "edge")
        ports = _run(["ip", "netns", "exec", bed.ns(host), "sysctl", "-n",
                      "net.ipv4.ip_local_port_range"]).stdout.split()
        assert (ports == ["40000", "44999"]) == (role == "edge"), (host, ports)
    # the models go to the nodes whose services load them (ai, tts), not to the edge node
    for host, role in HOSTS.items():
        synced = bed.root(host) / "opt/jbcalling/volumes/models/tiny-model/model.txt"
        assert synced.is_file() == (role in ("ai", "tts")), host
    edge = bed.root("translation01")
    assert "use-auth-secret" in (edge / "etc/turnserver.conf").read_text()
    assert (edge / "etc/jbcalling/tls/fullchain.pem").is_file()
    analyze = shutil.which("systemd-analyze")
    if analyze:
        for host in HOSTS:
            for unit in ("consul.service", "nomad.service"):
                res = _run([analyze, "verify", str(bed.root(host) / "etc/systemd/system" / unit)],
                           check=False)
                # a missing User= (no consul user on the test machine) is not a syntax error
                bad = [line for line in res.stderr.splitlines()
                       if "Unknown" in line or "Invalid" in line or "Failed to parse" in line]
                assert not bad, res.stderr


def test_second_run_changes_nothing(bed: LocalHosts, cluster: Api) -> None:
    first, second = bed.recaps
    assert all(c > 0 for _, c, _, _ in first.values())  # the first run did something everywhere
    assert set(second) == {"localhost", *HOSTS}
    for host, (_ok, changed, unreachable, failed) in second.items():
        assert (changed, unreachable, failed) == (0, 0, 0), (host, second)


def test_one_cluster_with_tls_gossip_and_acls(bed: LocalHosts, cluster: Api) -> None:
    api = cluster
    raft = wait_for("three Consul voters", lambda: exactly(3, api.consul(
        "translation02", "/v1/operator/raft/configuration").json()["Servers"]), 30, bed)
    assert sum(s["Leader"] for s in raft) == 1 and all(s["Voter"] for s in raft)
    members = api.consul("translation01", "/v1/agent/members").json()
    assert sorted(m["Name"] for m in members if m["Status"] == 1) == sorted(HOSTS)
    # ACLs: anonymous reads of the KV are denied, plain HTTP is not served on the node address
    assert api.consul("translation01", "/v1/kv/x", token="").status_code == 403
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{bed.addr('translation01')}:8500/v1/status/leader", timeout=2)

    servers = wait_for("three Nomad servers", lambda: exactly(3, api.nomad(
        "translation01", "/v1/operator/raft/configuration").json()["Servers"]), 30, bed)
    assert sum(s["Leader"] for s in servers) == 1
    nodes = wait_for("three ready Nomad clients", lambda: exactly(3, [
        x for x in api.nomad("translation01", "/v1/nodes").json() if x["Status"] == "ready"]), 60, bed)
    assert sorted(n["Name"] for n in nodes) == sorted(HOSTS)
    for n in nodes:
        detail = api.nomad("translation01", f"/v1/node/{n['ID']}").json()
        assert detail["Meta"]["jb_role"] == HOSTS[n["Name"]]
        assert {"models", "redis-data", "acme"} <= set(detail["HostVolumes"])
    # Nomad: a request without a token is refused; one without a client certificate too
    assert api.nomad("translation01", "/v1/jobs", token="").status_code == 403
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{bed.addr('translation01')}:4646/v1/jobs", verify=api.tls(), timeout=3)
    # Nomad registered itself in Consul with the token the play created for it
    wait_for("nomad and nomad-client in Consul's catalog", lambda: {"nomad", "nomad-client"} <= set(
        api.consul("translation01", "/v1/catalog/services").json()), 60, bed)
    # .consul DNS on each node's agent answers with the default (DNS) token's read rights
    addrs = wait_for("nomad.service.consul in DNS", lambda: _dig(bed, "translation02",
                                                                  "nomad.service.consul"), 30, bed)
    assert sorted(addrs) == sorted(bed.addr(h) for h in HOSTS)
    # the TURN secret reached signaling's Nomad Variable, the origin certificate the ingress's
    items = api.nomad("translation01", "/v1/var/nomad/jobs/signaling").json()["Items"]
    assert items["turn_secret"] == api.secret("turn/secret")
    assert "tls_key" not in items
    items = api.nomad("translation01", "/v1/var/nomad/jobs/ingress").json()["Items"]
    tls = bed.root("translation01") / "etc/jbcalling/tls"
    assert items["tls_cert"] == (tls / "fullchain.pem").read_text()
    assert items["tls_key"] == (tls / "privkey.pem").read_text()


def test_a_renewed_certificate_reaches_the_ingress(bed: LocalHosts, cluster: Api) -> None:
    """What certbot's deploy hook does after a renewal: new files, then the publisher script."""
    tls = bed.root("translation01") / "etc/jbcalling/tls"
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-days", "1", "-subj", "/CN=renewed.example.org", "-keyout",
          str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")])
    publish = str(bed.root("translation01") / "usr/local/sbin/jb-origin-publish")
    assert _run([publish]).stdout.strip() == "updated"
    assert _run([publish]).stdout.strip() == "unchanged"
    items = cluster.nomad("translation01", "/v1/var/nomad/jobs/ingress").json()["Items"]
    assert items["tls_cert"] == (tls / "fullchain.pem").read_text()
    assert items["tls_key"] == (tls / "privkey.pem").read_text()
    # the publisher's token may touch nothing else
    token = (tls / "nomad-origin.token").read_text().strip()
    assert cluster.nomad("translation01", "/v1/jobs", token=token).status_code == 403
    assert cluster.nomad("translation01", "/v1/var/nomad/jobs/signaling", token=token).status_code == 403


def test_the_firewall_lets_only_the_cluster_reach_a_service_port(bed: LocalHosts, cluster: Api) -> None:
    """A listener on a Nomad dynamic port of the ai node: the other nodes reach it, the test host
    (outside the cluster, though in jb_base_admin_cidrs) does not."""
    ai, edge = "translation02", "translation01"
    server = subprocess.Popen(["ip", "netns", "exec", bed.ns(ai), "/usr/bin/python3", "-m", "http.server",
                               "--bind", bed.addr(ai), "20077"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 20077), timeout=3).close()"
             "\n    print('open')\nexcept OSError as e:\n    print(type(e).__name__)")
    try:
        from_edge = wait_for("the ai node's port from the edge node", lambda: _run(
            ["ip", "netns", "exec", bed.ns(edge), "/usr/bin/python3", "-c", probe, bed.addr(ai)]
        ).stdout.strip() == "open", 20, bed)
        assert from_edge
        outside = _run(["/usr/bin/python3", "-c", probe, bed.addr(ai)]).stdout.strip()
        assert outside == "TimeoutError", outside  # dropped, not refused
        # the same host reaches the ai node's Nomad API: it is in jb_base_admin_cidrs
        assert _run(["/usr/bin/python3", "-c", probe.replace("20077", "4646"), bed.addr(ai)]
                    ).stdout.strip() == "open"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


_DIG = """
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(q, ("127.0.0.1", 8600)); r, _ = s.recvfrom(4096)
an = struct.unpack(">H", r[6:8])[0]; i = len(q)
for _ in range(an):
    i += 2 if r[i] >= 0xC0 else r.index(0, i) - i + 1
    typ, _c, _t, ln = struct.unpack(">HHIH", r[i:i + 10]); i += 10
    if typ == 1: print(socket.inet_ntoa(r[i:i + 4]))
    i += ln
"""


def _dig(bed: LocalHosts, host: str, name: str) -> list[str]:
    """A records of ``name`` from the node's own Consul DNS (127.0.0.1:8600 in its namespace)."""
    res = _run(["ip", "netns", "exec", bed.ns(host), "/usr/bin/python3", "-c", _DIG, name],
               check=False, timeout=10)
    return res.stdout.split() if len(res.stdout.split()) == 3 else []


def _jbctl_env(bed: LocalHosts) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JB_", "NOMAD_", "CONSUL_"))}
    for line in (bed.secrets / "jbctl.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["JB_STATE_DIR"] = str(bed.tmp / "jbstate")
    return env


def test_jbctl_status_over_tls_with_the_plays_token(bed: LocalHosts, cluster: Api) -> None:
    env = _jbctl_env(bed)
    assert env["NOMAD_ADDR"].startswith("https://") and env["CONSUL_HTTP_ADDR"].startswith("https://")
    res = _run([str(BIN / "jbctl"), "--env", "prod", "--json", "status"], env=env, cwd=ROOT,
               timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["nomad_addr"] == env["NOMAD_ADDR"] and doc["env"] == "prod"
    # the same without the token: refused, exit 3
    res = _run([str(BIN / "jbctl"), "--env", "prod", "status"], env={**env, "NOMAD_TOKEN": ""},
               cwd=ROOT, timeout=60, check=False)
    assert res.returncode == 3, res.stderr


JOB = {
    "ID": "jbt-web", "Name": "jbt-web", "Type": "service", "Datacenters": ["dc1"],
    "Spreads": [{"Attribute": "${node.unique.name}", "Weight": 100}],
    "TaskGroups": [{
        "Name": "web", "Count": 3,
        "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": "jbt-web", "PortLabel": "http", "Provider": "consul",
                      "Checks": [{"Name": "http", "Type": "http", "Path": "/", "Interval": 2_000_000_000,
                                  "Timeout": 1_000_000_000}]}],
        "Tasks": [{"Name": "web", "Driver": "raw_exec",
                   "Config": {"command": "/usr/bin/python3",
                              "args": ["-m", "http.server", "--bind", "${NOMAD_IP_http}",
                                       "${NOMAD_PORT_http}"]},
                   "Resources": {"CPU": 100, "MemoryMB": 64}}],
    }],
}


def test_losing_a_node_keeps_quorum_and_moves_its_allocations(bed: LocalHosts, cluster: Api) -> None:
    api = cluster
    res = api.nomad("translation01", "/v1/jobs", method="POST", json={"Job": JOB})
    assert res.status_code == 200, res.text

    def running(via: str = "translation01") -> list[dict[str, Any]]:
        allocs = api.nomad(via, "/v1/job/jbt-web/allocations").json()
        return [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]

    placed = wait_for("3 running allocations", lambda: exactly(3, running()), 90, bed)
    # the hardest node to lose: the Nomad leader's (spread puts one instance on every node)
    leader_addr = api.nomad("translation01", "/v1/status/leader").json().split(":")[0]
    victim = next(h for h in HOSTS if bed.addr(h) == leader_addr)
    assert victim in {a["NodeName"] for a in placed}
    wait_for("3 passing jbt-web instances in Consul", lambda: len(
        api.consul("translation01", "/v1/health/service/jbt-web?passing=1").json()) == 3, 60, bed)
    env = _jbctl_env(bed)
    status = _run([str(BIN / "jbctl"), "--env", "prod", "--json", "status"], env=env, cwd=ROOT,
                  timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    web = next(s for s in json.loads(status.stdout)["services"] if s["service"] == "jbt-web")
    assert (web["running"], web["healthy"]) == (3, 3)

    survivors = [h for h in HOSTS if h != victim]
    killed_at = time.monotonic()
    bed.kill_node(victim)

    def quorum() -> bool:
        consul_leader = api.consul(survivors[0], "/v1/status/leader").json()
        nomad_leader = api.nomad(survivors[1], "/v1/status/leader").json()
        # a write through the survivors proves the quorum, not just a remembered leader
        put = api.consul(survivors[1], "/v1/kv/jbt/quorum", method="PUT", content=b"ok")
        return bool(consul_leader and nomad_leader and put.status_code == 200
                    and not consul_leader.startswith(bed.addr(victim) + ":")
                    and not nomad_leader.startswith(bed.addr(victim) + ":"))

    wait_for("a leader and a write among the survivors", quorum, 60, bed)
    bed.timings["quorum_after_kill_s"] = round(time.monotonic() - killed_at, 1)

    def moved() -> list[dict[str, Any]] | None:
        r = running(via=survivors[0])
        return r if len(r) == 3 and all(a["NodeName"] in survivors for a in r) else None

    moved_allocs = wait_for(f"{victim}'s allocation running elsewhere", moved, 150, bed)
    bed.timings["allocations_moved_s"] = round(time.monotonic() - killed_at, 1)
    assert {a["NodeName"] for a in moved_allocs} <= set(survivors)
    node = next(n for n in api.nomad(survivors[0], "/v1/nodes").json() if n["Name"] == victim)
    assert node["Status"] == "down"
    # jbctl, pointed at a survivor, sees the service whole again
    wait_for("3 passing jbt-web instances after the move", lambda: len(api.consul(
        survivors[0], "/v1/health/service/jbt-web?passing=1").json()) == 3, 60, bed)
    env = {**env, "NOMAD_ADDR": f"https://{bed.addr(survivors[0])}:4646",
           "CONSUL_HTTP_ADDR": f"https://{bed.addr(survivors[0])}:8501"}
    status = _run([str(BIN / "jbctl"), "--env", "prod", "--json", "status"], env=env, cwd=ROOT,
                  timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    web = next(s for s in json.loads(status.stdout)["services"] if s["service"] == "jbt-web")
    assert (web["running"], web["healthy"]) == (3, 3) and victim not in web["nodes"]
    bed.timings["service_whole_again_s"] = round(time.monotonic() - killed_at, 1)
    stop = api.nomad(survivors[0], "/v1/job/jbt-web?purge=true", method="DELETE")
    assert stop.status_code == 200
    print("\nansible cluster timings:", json.dumps(bed.timings))
    (bed.tmp / "timings.json").write_text(json.dumps(bed.timings))
