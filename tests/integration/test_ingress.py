"""The ingress (Debian's nginx as a Nomad job) in front of two signaling replicas, on a real dev
cluster with ACLs, and the secrets every job reads from Nomad Variable nomad/jobs.

One cluster for the module, in file order: deploy redis + signaling (2 replicas) + ingress, then
through the ingress: the page and its headers, the internal endpoints hidden, rooms sticky to one
replica (each replica's own request counters and socket count say which one answered), room-less
requests spread, the WebSocket surviving an nginx reload when signaling scales; Redis and the
gateway refusing clients without their secrets; /health's version and release; last, the
ingress as production runs it: exec driver, TLS from Nomad Variables.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from jbcalling.common.version import __version__
from jbctl_helpers import Cluster, base_env

pytestmark = pytest.mark.integration
OFFSET = 9000  # a port offset (and dynamic-port window) no other test file uses
RELEASE = "9.9.9-ingress-test"  # differs from the code's version, so /health shows both


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("ingstate")
    env = {**base_env(state), "JB_DEV_PORT_OFFSET": str(OFFSET), "JB_RELEASE": RELEASE}
    c = Cluster(env, state, OFFSET)
    up = c.jbctl("cluster", "up", "--acl", timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield c
    finally:
        down = c.jbctl("cluster", "down", timeout=180)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def ingress(cluster: Cluster) -> str:
    """The deployed stack's public URL, as `jbctl deploy` printed it."""
    res = cluster.jbctl("deploy", "redis", "signaling", "ingress", "--var", "signaling_count=2",
                        timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "ingress: healthy" in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "participants open: " in ln]
    assert len(lines) == 1, res.stderr[-2000:]
    url = lines[0].split("participants open: ", 1)[1].strip().rstrip("/")
    assert url.startswith("http://127.0.0.1:"), url
    assert len(cluster.passing("signaling")) == 2
    return url


def _shared_secrets(c: Cluster) -> dict[str, str]:
    return dict(c.nomad_get("/v1/var/nomad/jobs")["Items"])


def _counters(replica: str) -> dict[str, float]:
    """One replica's own count of answered requests, by route template."""
    text = httpx.get(replica + "/metrics", timeout=5).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "jb_http_requests":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[s.labels["path"]] = out.get(s.labels["path"], 0) + s.value
    return out


def _sockets(replica: str) -> int:
    return int(httpx.get(replica + "/ready", timeout=5).json()["load"]["sockets"])


def test_deploy_prints_the_ingress_url_and_status_lists_it(cluster: Cluster, ingress: str) -> None:
    doc = cluster.jbctl_json("status")
    assert doc["public_urls"] == [ingress]
    by_name = {s["service"]: s for s in doc["services"]}
    assert by_name["ingress"]["healthy"] == 1 and by_name["signaling"]["healthy"] == 2


def test_the_page_through_the_ingress_with_security_headers(ingress: str) -> None:
    page = httpx.get(ingress + "/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    h = page.headers
    # one value each: nginx's, signaling's own hidden (no duplicate header)
    assert h.get_list("x-content-type-options") == ["nosniff"]
    assert h.get_list("referrer-policy") == ["no-referrer"]
    assert h.get_list("x-frame-options") == ["DENY"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]  # signaling's CSP kept
    assert "strict-transport-security" not in h  # plain HTTP in dev: HSTS would be ignored
    assert "nginx/" not in h.get("server", "")  # no version on display


def test_internal_endpoints_are_not_public(cluster: Cluster, ingress: str) -> None:
    for path in ("/metrics", "/ready", "/health", "/docs", "/openapi.json", "/metrics/"):
        resp = httpx.get(ingress + path, timeout=10)
        assert resp.status_code == 404, path
        assert "jb_http_requests" not in resp.text and "ready" not in resp.text.lower()
    # while each replica serves them on its own (cluster-internal) address
    for replica in cluster.urls("signaling"):
        assert httpx.get(replica + "/metrics", timeout=5).status_code == 200


def test_prometheus_path_is_for_the_operator_only(cluster: Cluster, ingress: str) -> None:
    """/prometheus/ asks for basic auth: 401 (with WWW-Authenticate and the security headers)
    without credentials, with a wrong password or user; the operator's password (jbctl generated
    it in nomad/jobs/ingress) passes to the upstream - 502 here, where no prometheus runs."""
    items = cluster.nomad_get("/v1/var/nomad/jobs/ingress")["Items"]
    password = items["prometheus_password"]
    assert len(password) >= 40
    for auth in (None, ("operator", "x" + password), ("root", password)):
        resp = httpx.get(ingress + "/prometheus/api/v1/query?query=up", auth=auth, timeout=10)
        assert resp.status_code == 401, (auth, resp.status_code)
        assert resp.headers["www-authenticate"].startswith('Basic realm="jbcalling operator"')
        assert resp.headers["x-frame-options"] == "DENY"
    resp = httpx.get(ingress + "/prometheus/api/v1/query?query=up", auth=("operator", password),
                     timeout=10)
    assert resp.status_code == 502, resp.status_code


def _client(source: str) -> httpx.Client:
    """An HTTP client whose connections come from ``source`` (any 127.x address is this
    machine): signaling counts its rate limits per client address, as the ingress reports it."""
    return httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address=source))


def _room_visit(ingress: str, page_loads: int, source: str) -> tuple[str, list[dict[str, Any]]]:
    with _client(source) as http:
        created = http.post(ingress + "/api/rooms")
        assert created.status_code == 201, created.text
        room = created.json()["room_id"]
        assert created.json()["join_url"] == f"{ingress}/r/{room}"
        for _ in range(page_loads):
            assert http.get(f"{ingress}/r/{room}").status_code == 200
        people = []
        for name in ("An", "Ben"):
            joined = http.post(f"{ingress}/api/rooms/{room}/join",
                               json={"name": name, "speak": "en", "captions": "vi"})
            assert joined.status_code == 200, joined.text
            people.append(joined.json())
    return room, people


async def _open(ingress: str, room: str, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(ingress.replace("http://", "ws://") + f"/ws/rooms/{room}?token={token}")
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, welcome


async def _sockets_while_open(ingress: str, room: str, token: str, replicas: list[str]) -> list[int]:
    """Each replica's count of open sockets while one participant's socket is open."""
    ws, welcome = await _open(ingress, room, token)
    assert welcome["type"] == "welcome"
    try:
        return [_sockets(r) for r in replicas]
    finally:
        await ws.close()


def test_every_request_of_a_room_reaches_one_replica(cluster: Cluster, ingress: str) -> None:
    replicas = cluster.urls("signaling")
    assert len(replicas) == 2
    homes = []
    for i in range(12):
        before = {r: _counters(r) for r in replicas}
        room, people = _room_visit(ingress, page_loads=3, source=f"127.0.0.{10 + i}")
        sockets = asyncio.run(_sockets_while_open(ingress, room, people[0]["token"], replicas))
        delta = {r: {k: v - before[r].get(k, 0) for k, v in _counters(r).items()}
                 for r in replicas}
        pages = [delta[r].get("/r/{room_id}", 0) for r in replicas]
        joins = [delta[r].get("/api/rooms/{room_id}/join", 0) for r in replicas]
        home = pages.index(3)
        assert sorted(pages) == [0, 3] and joins[home] == 2 and sum(joins) == 2, delta
        assert sockets[home] == 1 and sum(sockets) == 1, sockets
        homes.append(home)
    # and the rooms themselves are spread over both replicas (12 rooms: all on one by chance
    # has probability 2 / 4096)
    assert set(homes) == {0, 1}, homes


def test_requests_without_a_room_spread(cluster: Cluster, ingress: str) -> None:
    replicas = cluster.urls("signaling")
    before = {r: _counters(r).get("/", 0) for r in replicas}
    for _ in range(30):
        assert httpx.get(ingress + "/", timeout=10).status_code == 200
    got = [_counters(r).get("/", 0) - before[r] for r in replicas]
    assert sum(got) == 30 and min(got) >= 3, got


def test_an_open_socket_survives_the_reload_when_signaling_scales(cluster: Cluster,
                                                                  ingress: str) -> None:
    room, people = _room_visit(ingress, page_loads=1, source="127.0.0.30")

    async def scenario() -> None:
        ws, _ = await _open(ingress, room, people[0]["token"])
        try:
            res = await asyncio.to_thread(cluster.jbctl, "scale", "signaling", "3")
            assert res.returncode == 0, res.stderr
            # nginx re-rendered with three servers and reloaded (SIGHUP): the new replica answers
            await asyncio.to_thread(_wait, lambda: _three_upstreams(cluster), 60,
                                    "nginx's upstream with three replicas")
            await ws.send(json.dumps({"type": "no_such_type"}))
            reply = {"type": ""}
            while reply["type"] != "error":  # room events (e.g. "present") may come first
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["code"] == "unknown_type", reply
        finally:
            await ws.close()

    asyncio.run(scenario())
    assert cluster.jbctl("scale", "signaling", "2").returncode == 0


def _three_upstreams(c: Cluster) -> bool:
    """nginx's rendered config lists three signaling servers and Nomad signalled the task."""
    (alloc,) = [a for a in c.nomad_get("/v1/job/ingress/allocations")
                if a["ClientStatus"] == "running"]
    conf = (c.state_dir / f"cluster-{OFFSET}" / "nomad" / "alloc" / alloc["ID"] / "nginx" /
            "local" / "nginx.conf")
    servers = [ln for ln in conf.read_text().splitlines()
               if ln.strip().startswith("server ") and "max_fails" in ln]
    events = c.nomad_get(f"/v1/allocation/{alloc['ID']}")["TaskStates"]["nginx"]["Events"]
    return len(servers) == 3 and any(e["Type"] == "Signaling" for e in events)


def test_signaling_counts_the_real_client_behind_the_ingress(ingress: str) -> None:
    """The rate limit of room creation (10 a minute) counts per client address: nginx passes the
    peer's address and replaces any X-Forwarded-For a client sends, so a client can neither pose
    as many nor be confused with another."""
    codes = []
    with _client("127.0.0.50") as http:
        for i in range(12):
            codes.append(http.post(ingress + "/api/rooms",
                                   headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}).status_code)
    assert codes[:10] == [201] * 10 and codes[10:] == [429, 429], codes
    with _client("127.0.0.51") as other:
        assert other.post(ingress + "/api/rooms").status_code == 201


def test_redis_refuses_a_client_without_the_password(cluster: Cluster, ingress: str) -> None:
    (inst,) = cluster.passing("redis")
    addr, port = inst["Service"]["Address"], inst["Service"]["Port"]
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=addr, port=port, socket_timeout=5).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=addr, port=port, password="wrong-password", socket_timeout=5).ping()
    password = _shared_secrets(cluster)["redis_password"]
    assert len(password) >= 40
    assert redis.Redis(host=addr, port=port, password=password, socket_timeout=5).ping()
    # signaling got it through its template: both replicas reach Redis
    for replica in cluster.urls("signaling"):
        assert httpx.get(replica + "/ready", timeout=5).json()["checks"]["redis"] == "ok"


def test_the_gateway_refuses_its_api_without_the_token(cluster: Cluster, ingress: str) -> None:
    res = cluster.jbctl("deploy", "gateway", timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    (gateway,) = cluster.urls("gateway")
    token = _shared_secrets(cluster)["gateway_token"]
    assert httpx.get(gateway + "/v1/instance", timeout=5).status_code == 401
    assert httpx.get(gateway + "/v1/instance", headers={"X-JB-Gateway-Token": "x" * len(token)},
                     timeout=5).status_code == 401
    ok = httpx.get(gateway + "/v1/instance", headers={"X-JB-Gateway-Token": token}, timeout=5)
    assert ok.status_code == 200 and "boot" in ok.json()


def test_health_reports_the_code_version_and_the_release(cluster: Cluster, ingress: str) -> None:
    for replica in cluster.urls("signaling"):
        health = httpx.get(replica + "/health", timeout=5).json()
        assert health["version"] == __version__ and health["release"] == RELEASE, health


def test_the_tls_ingress_under_exec_as_nobody(cluster: Cluster, ingress: str,
                                              tmp_path: Path) -> None:
    """Production's shape on the dev node: the exec driver (chroot, user nobody, only
    net_bind_service), TLS from Nomad Variable nomad/jobs/ingress rendered into secrets/ (0600),
    HSTS, and plain HTTP redirecting to https."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, check=True, timeout=60)
    httpx.put(cluster.nomad + "/v1/var/nomad/jobs/ingress", headers={"X-Nomad-Token": cluster.token},
              json={"Namespace": "default", "Path": "nomad/jobs/ingress",
                    "Items": {"tls_cert": cert.read_text(), "tls_key": key.read_text()}},
              timeout=10).raise_for_status()
    # exec builds the task's chroot first: minutes on a loaded 2-core machine, not dev's 60 s
    res = cluster.jbctl("deploy", "ingress", "--var", "driver=exec", "--var", "ingress_tls=true",
                        "--var", "healthy_deadline=4m", "--var", "progress_deadline=5m",
                        timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    (inst,) = cluster.passing("ingress")
    svc = inst["Service"]
    https = f"https://127.0.0.1:{svc['Meta']['public_port']}"
    assert f"participants open: {https}/" in res.stderr

    trust = ssl.create_default_context(cafile=str(cert))
    page = httpx.get(https + "/", verify=trust, timeout=10)
    assert page.status_code == 200 and page.http_version in ("HTTP/1.1", "HTTP/2")
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    assert httpx.get(https + "/metrics", verify=trust, timeout=10).status_code == 404
    plain = httpx.get(f"http://127.0.0.1:{svc['Port']}/r/abc?x=1", timeout=10)
    assert plain.status_code == 301 and plain.headers["location"] == f"{https}/r/abc?x=1"

    (alloc,) = [a for a in cluster.nomad_get("/v1/job/ingress/allocations")
                if a["ClientStatus"] == "running"]
    secrets_dir = (cluster.state_dir / f"cluster-{OFFSET}" / "nomad" / "alloc" / alloc["ID"] /
                   "nginx" / "secrets")
    for name in ("tls.crt", "tls.key"):
        st = (secrets_dir / name).stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 65534), name
    # the master of this allocation (its parent, Nomad's executor, logs into the allocation's
    # folder), chrooted: its config is at /local/nginx.conf
    chrooted = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _cmdline(p).startswith("nginx: master") and " -c /local/nginx.conf " in
                _cmdline(p)]
    masters = [p for p in chrooted if alloc["ID"] in _cmdline(_parent(p))]
    assert len(masters) == 1, [(p.name, _cmdline(_parent(p))) for p in chrooted]
    status = (masters[0] / "status").read_text()
    assert re.search(r"^Uid:\s+65534\s", status, re.M), status
    # CAP_NET_BIND_SERVICE (bit 10) and nothing else
    assert re.search(r"^CapEff:\s+0000000000000400$", status, re.M), status


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _parent(proc: Path) -> Path:
    stat = _read(proc / "stat")
    return Path("/proc") / (stat.rsplit(")", 1)[1].split()[1] if ")" in stat else "0")
