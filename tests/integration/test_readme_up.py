"""The README's first command, `bash tools/up.sh`, brings the whole stack up and prints URLs.

The stack it brings up is shared by every test of this module (one cluster: `up.sh` takes
about 1.5 minutes), so the observability tests run against the same deployment a newcomer
gets. It runs on its own port offset and state dir (``JB_TEST_UP_OFFSET`` picks another offset
when two checkouts run it side by side), so it never touches a developer's cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jbctl_helpers import ROOT, Cluster, alive, base_env, task_pids

pytestmark = pytest.mark.integration
OFFSET = int(os.environ.get("JB_TEST_UP_OFFSET", "11000"))


@dataclass
class Stack:
    cluster: Cluster
    up: subprocess.CompletedProcess[str]  # up.sh's own run
    public: str  # the URL participants open, without the trailing slash


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("upstate")
    env = {**base_env(state), "JB_DEV_PORT_OFFSET": str(OFFSET)}
    c = Cluster(env, state, OFFSET)
    try:
        res = subprocess.run(["bash", "tools/up.sh"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=900, check=False)
        assert res.returncode == 0, res.stderr[-3000:]
        last = res.stderr.strip().splitlines()[-1]
        yield Stack(c, res, last.removeprefix("participants open: ").rstrip("/"))
    finally:
        down = c.jbctl("cluster", "down", timeout=180)
        assert down.returncode == 0, down.stderr


def test_up_sh_deploys_every_service_and_prints_urls(stack: Stack) -> None:
    err = stack.up.stderr
    assert f"Nomad UI:  http://127.0.0.1:{4646 + OFFSET}/ui/" in err
    assert f"Consul UI: http://127.0.0.1:{8500 + OFFSET}/ui/" in err
    assert "signaling: http://127.0.0.1:" in err
    # up.sh ends with the page participants open: the ingress in front of signaling
    last = err.strip().splitlines()[-1]
    assert last.startswith("participants open: http://127.0.0.1:") and last.endswith("/"), last
    doc = stack.cluster.jbctl_json("status")
    assert all(s["deployed"] and s["healthy"] == s["desired"] >= 1 for s in doc["services"]), doc
    assert "ingress" in {s["service"] for s in doc["services"]}
    assert doc["public_urls"] == [stack.public]


def test_a_call_and_the_probe_through_the_deployed_stack(stack: Stack) -> None:
    _call_through_the_deployed_stack(stack.public)
    # Prometheus's caption count before the probe (test_prometheus_... compares after it)
    _PROBE["before"] = _caption_counts(stack)
    # The whole pipeline, stage by stage (latency targets are benchmarks, not asserted here).
    probe = stack.cluster.jbctl("--json", "probe", "-n", "5", "--timeout", "40", timeout=400)
    assert probe.returncode == 0, probe.stderr[-3000:]
    summary = json.loads(probe.stdout)["summary"]
    assert all(s["n"] == 5 and s["missing"] == 0 for s in summary.values()), summary
    assert all(u["recognized"] for u in json.loads(probe.stdout)["utterances"])
    _PROBE["doc"] = json.loads(probe.stdout)


# What the probe test leaves for the Prometheus test after it.
_PROBE: dict[str, Any] = {}


def _prometheus(stack: Stack, query: str) -> list[dict[str, Any]]:
    """An instant query through the ingress's /prometheus/, as the operator (basic auth with
    the password jbctl generated in Nomad Variable nomad/jobs/ingress)."""
    import httpx

    password = _nomad(stack.cluster, "/v1/var/nomad/jobs/ingress")["Items"]["prometheus_password"]
    resp = httpx.get(stack.public + "/prometheus/api/v1/query", params={"query": query},
                     auth=("operator", password), timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    result: list[dict[str, Any]] = resp.json()["data"]["result"]
    return result


def _caption_counts(stack: Stack) -> dict[str, int]:
    """jb_caption_latency_seconds_count by kind, once Prometheus scrapes the gateway (a kind
    the gateway has not observed yet has no series: 0)."""
    import time

    deadline = time.monotonic() + 90  # Prometheus is deployed last; its first scrapes
    while not _prometheus(stack, 'up{job="gateway"} == 1'):
        assert time.monotonic() < deadline, "Prometheus does not scrape the gateway"
        time.sleep(1)
    rows = _prometheus(stack, "sum by (kind) (jb_caption_latency_seconds_count)")
    return {r["metric"]["kind"]: int(float(r["value"][1])) for r in rows}


def test_status_says_where_to_click_with_json_after_the_command(stack: Stack) -> None:
    """`jbctl status --json` (global option after the command) and its messages name the Nomad
    and Consul UIs, Prometheus (ingress and its own address) and, last, the call page."""
    import httpx

    c = stack.cluster
    res = c.jbctl("status", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["public_urls"] == [stack.public]
    assert (doc["nomad_ui"], doc["consul_ui"]) == (c.nomad + "/ui/", c.consul + "/ui/")
    through, direct = doc["prometheus_urls"]
    assert through == stack.public + "/prometheus/"
    [inst] = c.passing("prometheus")
    assert direct == f"http://{inst['Service']['Address']}:{inst['Service']['Port']}/prometheus/"
    ready = httpx.get(direct + "api/v1/status/buildinfo", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "success", ready.text
    # the ingress routes /prometheus/ for the operator only (basic auth: jbctl top --via ingress)
    assert httpx.get(through, timeout=10).status_code == 401
    # the human output: up.sh ends with `jbctl status`, whose last lines are the links, the page last
    lines = res.stderr.strip().splitlines()
    assert f"Nomad UI:  {c.nomad}/ui/" in lines and f"Consul UI: {c.consul}/ui/" in lines
    assert lines[-3:] == [f"Prometheus: {through}", f"Prometheus: {direct}",
                          f"participants open: {stack.public}/"]
    assert stack.up.stderr.strip().splitlines()[-3:] == lines[-3:]


def _scraped_services(c: Cluster) -> set[str]:
    """The services Prometheus scrapes by tag: every jbcalling service that registers it."""
    import httpx

    catalog = httpx.get(c.consul + "/v1/catalog/services", timeout=10).json()
    return {name for name, tags in catalog.items() if "jb-metrics" in tags}


def test_prometheus_scrapes_every_service_and_counted_the_probe_s_captions(stack: Stack) -> None:
    """Through the ingress (basic auth): every target of every jb-metrics service up, and the
    Nomad and Consul agents'; the caption latency histogram grew by exactly the captions the
    probe's listener received, by kind; the p50/p95 recording rules have values."""
    import time

    import httpx

    c = stack.cluster
    assert httpx.get(stack.public + "/prometheus/api/v1/query", params={"query": "up"},
                     timeout=10).status_code == 401  # never without the password
    scraped = _scraped_services(c) | {"nomad", "consul"}
    assert {"signaling", "gateway", "stt", "mt", "tts", "prometheus", "alertmanager"} <= scraped
    deadline = time.monotonic() + 60
    while True:
        up: dict[str, list[str]] = {}
        for r in _prometheus(stack, "up"):
            up.setdefault(r["metric"]["job"], []).append(r["value"][1])
        down = {s: up.get(s) for s in scraped if not up.get(s) or set(up[s]) != {"1"}}
        if not down or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not down, down
    # every instance Consul has of a jb-metrics service is a target (instance = address:port)
    for service in ("gateway", "stt"):
        want = {u.removeprefix("http://") for u in c.urls(service)}
        got = {r["metric"]["instance"] for r in _prometheus(stack, f'up{{job="{service}"}}')}
        assert want == got, (service, want, got)

    probe = _PROBE["doc"]["captions"]
    assert probe.get("final", 0) >= 5 and probe.get("translation", 0) >= 5, probe
    want = {k: _PROBE["before"].get(k, 0) + n for k, n in probe.items()}
    deadline = time.monotonic() + 30  # the next scrape of the gateway
    while (counts := _caption_counts(stack)) != want and time.monotonic() < deadline:
        time.sleep(1)
    assert counts == want, {"before": _PROBE["before"], "probe saw": probe, "after": counts}
    deadline = time.monotonic() + 30  # the next rule evaluation
    while not (p95 := _prometheus(stack, 'jb:caption_latency_seconds:p95_5m{kind="final"}')):
        assert time.monotonic() < deadline, "no value from jb:caption_latency_seconds:p95_5m"
        time.sleep(1)
    p50 = _prometheus(stack, 'jb:caption_latency_seconds:p50_5m{kind="final"}')
    assert [(r["metric"]["source"], r["metric"]["lang"]) for r in p95] == [("en", "en")], p95
    assert 0 < float(p50[0]["value"][1]) <= float(p95[0]["value"][1]) <= 10, (p50, p95)
    print(f"prometheus: probe captions {probe}, final p50 {p50[0]['value'][1]} s, "
          f"p95 {p95[0]['value'][1]} s")


def test_top_json_has_the_figures_of_every_service(stack: Stack) -> None:
    """After the probe's call: every scraped service up with CPU, memory and request rates; the
    rooms' gauges; caption latency p50/p95 (the recording rules) per pair, with history."""
    import time

    c = stack.cluster
    scraped = _scraped_services(c)
    assert {"signaling", "gateway", "stt", "mt", "tts"} <= scraped, scraped
    deadline = time.monotonic() + 60  # a target added last may wait for its first scrapes
    while True:
        res = c.jbctl("top", "--json")
        assert res.returncode == 0, res.stderr[-2000:]
        doc = json.loads(res.stdout)
        by = {s["service"]: s for s in doc["services"]}
        missing = [name for name in sorted(scraped) if not (
            name in by and by[name]["instances_up"] == by[name]["targets"] >= 1
            and by[name]["cpu_cores"] is not None and by[name]["memory_bytes"] is not None)]
        finals = [p for p in doc["captions"] if p["kind"] == "final" and p["p95_s"] is not None]
        if (not missing and finals) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, {name: by.get(name) for name in missing}
    assert set(scraped) <= set(by) and doc["prometheus"].endswith("/prometheus/")
    assert all(by[name]["cpu_cores"] >= 0 and by[name]["memory_bytes"] > 1e6 for name in scraped)
    # every jbcalling service answers HTTP (its health checks, the scrapes): a request rate
    assert all(by[name]["requests_per_s"] > 0 for name in ("signaling", "gateway", "stt", "mt", "tts"))
    assert doc["rooms"]["participants"] is not None and doc["rooms"]["media_peers"] is not None
    # through the ingress, as the operator (basic auth with the password jbctl generated): the
    # same figures; a wrong user is refused with what to check
    ingress = c.jbctl("top", "--json", "--via", "ingress")
    assert ingress.returncode == 0, ingress.stderr[-2000:]
    through = json.loads(ingress.stdout)
    assert through["prometheus"] == stack.public + "/prometheus/"
    assert {s["service"] for s in through["services"]} == set(by)
    refused = c.jbctl("top", "--json", "--via", "ingress", "--user", "nobody")
    assert refused.returncode == 3 and "prometheus_password" in refused.stderr, refused.stderr
    # the probe's English speech captioned in English and translated: p50 <= p95, with history
    assert finals, doc["captions"]
    assert all(0 < p["p50_s"] <= p["p95_s"] < 10 and p["p95_history_s"][-1] is not None
               for p in finals), finals


def test_top_live_view_in_a_terminal_shows_every_service(stack: Stack, tmp_path: Path) -> None:
    """The live view, screenshot-free: `jbctl top` in a tmux pane of its own tmux server,
    read with capture-pane; it redraws (the clock moves) and Ctrl-C ends it with exit 0."""
    import re
    import time

    from jbctl_helpers import JBCTL

    c = stack.cluster
    sock = str(tmp_path / "tmux.sock")

    def tmux(*args: str) -> str:
        res = subprocess.run(["tmux", "-S", sock, *args], env={**c.env, "TERM": "xterm-256color"},
                             capture_output=True, text=True, timeout=30, check=True)
        return res.stdout

    tmux("new-session", "-d", "-s", "top", "-x", "200", "-y", "50", "bash", "-c",
         f"{JBCTL} top --interval 1; echo exit $?; sleep 120")
    try:
        want = {"signaling", "gateway", "stt", "mt", "tts", "redis", "ingress"} | _scraped_services(c)
        clocks: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", "top")
            clock = re.search(r"jbctl top  \S+  (\d\d:\d\d:\d\d)", screen)
            if clock and all(f"│ {name} " in screen for name in want):
                clocks.append(clock.group(1))
                if len(set(clocks)) >= 2:
                    break
            time.sleep(0.5)
        assert len(set(clocks)) >= 2, screen  # every service shown, and the view refreshed
        assert "caption latency after end of speech" in screen and "last refresh failed" not in screen
        tmux("send-keys", "-t", "top", "C-c")
        deadline = time.monotonic() + 15
        while "exit 0" not in (screen := tmux("capture-pane", "-p", "-t", "top")):
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=30,
                       check=False)


def test_redis_and_the_ingress_are_scraped_through_the_exporters_beside_them(stack: Stack) -> None:
    """Redis and nginx have no /metrics: the redis job's exporter task and the ingress job's
    prober (tag jb-exporter, meta metrics_port) answer for them, job label the service's name,
    found in Consul like the rest; the prober's answer can be "down" (a port nothing serves)."""
    import time

    import httpx

    c = stack.cluster
    targets = {}
    for service in ("redis", "ingress"):
        [inst] = c.passing(service)
        svc = inst["Service"]
        assert "jb-exporter" in svc["Tags"], svc
        targets[service] = f"{svc['Address']}:{svc['Meta']['metrics_port']}"
        assert targets[service] != f"{svc['Address']}:{svc['Port']}"
    want = {("redis", targets["redis"], "redis_up"), ("ingress", targets["ingress"], "probe_success")}
    deadline = time.monotonic() + 60  # a target new to Prometheus waits for its first scrapes
    while True:
        got = {(r["metric"]["job"], r["metric"]["instance"], r["metric"]["__name__"])
               for r in _prometheus(stack, '(redis_up or probe_success) == 1 and on (job, instance) '
                                           'up{job=~"redis|ingress"} == 1')}
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert got == want, {"targets": targets, "up with the service up": got}
    # Redis's own figures: the stack's clients (signaling, gateway, mt) are connected
    clients = _prometheus(stack, 'redis_connected_clients{job="redis"}')
    assert clients and float(clients[0]["value"][1]) >= 3, clients
    # the prober tells a dead target from a live one
    probe = f"http://{targets['ingress']}/probe"
    dead = httpx.get(probe, params={"module": "ingress_alive", "target": "http://127.0.0.1:9/.jb/ingress"},
                     timeout=15)
    assert dead.status_code == 200 and "\nprobe_success 0" in dead.text, dead.text[-500:]


# Tests below stop or hang a service: they go last, after every test that only reads the stack
# (the stopped-stt alert test follows this one).
def test_a_hung_mt_is_restarted_by_nomad(stack: Stack) -> None:
    """SIGSTOP mt's process (found through its running allocation): its liveness check fails,
    check_restart has Nomad restart the task (a new process, a restart event that names the
    unhealthy check) and mt is healthy again in Consul (jobs/mt.nomad.hcl, "mt alive")."""
    import signal
    import time

    c = stack.cluster
    (alloc,) = [a for a in _nomad(c, "/v1/job/mt/allocations") if a["ClientStatus"] == "running"]
    restarts = alloc["TaskStates"]["mt"]["Restarts"]
    (pid,) = task_pids("jb-mt", f"/alloc/{alloc['ID']}/")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        new: list[int] = []
        while not new:
            assert time.monotonic() - t0 < 120, "mt was not restarted within 120 s"
            time.sleep(1)
            new = [p for p in task_pids("jb-mt", f"/alloc/{alloc['ID']}/") if p != pid]
        restarted_after = time.monotonic() - t0
        while not (healthy := c.passing("mt")):
            assert time.monotonic() - t0 < 180, "mt not healthy again within 180 s"
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):  # never leave a stopped process behind
            os.kill(pid, signal.SIGCONT)
    state = _nomad(c, f"/v1/allocation/{alloc['ID']}")["TaskStates"]["mt"]
    assert state["Restarts"] == restarts + 1 and state["State"] == "running", state
    events = [e for e in state["Events"] if e["Type"] == "Restart Signaled"]
    assert events and "mt alive" in events[-1]["DisplayMessage"] \
        and "unhealthy" in events[-1]["DisplayMessage"], state["Events"]
    assert not alive(pid), "the hung process is still there"
    assert [i["Service"]["ID"] for i in healthy], healthy
    print(f"hung mt: restarted {restarted_after:.1f} s after SIGSTOP, "
          f"healthy {time.monotonic() - t0:.1f} s after")


def _nomad(c: Cluster, path: str) -> Any:
    """up.sh's dev cluster runs without ACLs: no token."""
    import httpx

    resp = httpx.get(c.nomad + path, timeout=10)
    resp.raise_for_status()
    return resp.json()


def _call_through_the_deployed_stack(signaling: str) -> None:
    """Two synthetic participants call each other through the deployed ingress, signaling and
    gateway (``signaling``: the public URL)."""
    import asyncio

    import httpx
    from websockets.asyncio.client import connect

    from jbcalling.client import SyntheticPeer, negotiate_over_signaling
    from jbcalling.gateway import ice

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
            people = [(await http.post(f"{signaling}/api/rooms/{room}/join",
                                       json={"name": n, "speak": "en", "captions": "vi"})).json()
                      for n in ("An", "Ben")]
        ws_url = signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
        peers = [SyntheticPeer("", room, p["participant_id"]) for p in people]
        async with connect(ws_url + people[0]["token"]) as wa, \
                connect(ws_url + people[1]["token"]) as wb:
            for peer, ws in zip(peers, (wa, wb), strict=True):
                await negotiate_over_signaling(peer, ws)
            deadline = asyncio.get_running_loop().time() + 30
            while not all(p.receiving("video", 20) == 1 for p in peers):
                assert asyncio.get_running_loop().time() < deadline, [p.frames for p in peers]
                await asyncio.sleep(0.2)
            for p in peers:
                await p.close()

    ice.use_host_addresses(["127.0.0.1"])
    try:
        asyncio.run(scenario())
    finally:
        ice.use_host_addresses([])


class Webhook:
    """A local receiver of Alertmanager's webhook posts, and Alertmanager redeployed to post to
    it (module fixture ``webhook``); ``for_s``: the dev rule's `for` (jobs/vars/dev.hcl
    alert_down_for)."""

    def __init__(self, c: Cluster) -> None:
        import http.server
        import re
        import threading
        import time

        self.received: list[tuple[float, dict[str, Any]]] = []
        received = self.received

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        res = c.jbctl("deploy", "alertmanager", "--var", f"alert_webhook_url={url}", timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        dev = (ROOT / "jobs" / "vars" / "dev.hcl").read_text()
        m = re.search(r'^alert_down_for\s*=\s*"(\d+)s"', dev, re.M)
        assert m, "jobs/vars/dev.hcl sets no alert_down_for"
        self.for_s = int(m.group(1))

    def fired(self, job: str, since: float) -> list[float]:
        """When ServiceNoHealthyInstance{job} came in firing, since ``since`` (monotonic)."""
        return [at for at, doc in self.received for a in doc["alerts"]
                if at >= since and a["status"] == "firing" and a["labels"].get("job") == job
                and a["labels"]["alertname"] == "ServiceNoHealthyInstance"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook(stack: Stack) -> Iterator[Webhook]:
    hook = Webhook(stack.cluster)
    try:
        yield hook
    finally:
        hook.close()


def test_a_hung_redis_fires_the_no_healthy_instance_alert_through_its_exporter(
        stack: Stack, webhook: Webhook) -> None:
    """SIGSTOP Redis (its TCP check still passes: the kernel accepts, so nothing restarts it):
    the exporter beside it still answers, says redis_up 0, and ServiceNoHealthyInstance{job=
    "redis"} reaches the webhook within the rule's `for` plus 30 s. SIGCONT after: Redis and its
    clients go on (the stt test after this one needs none of them)."""
    import signal
    import time

    c = stack.cluster
    [inst] = c.passing("redis")
    address = f"{inst['Service']['Address']}:{inst['Service']['Port']}"
    (pid,) = task_pids(f"redis-server {address}", "/")  # Redis's title; its cwd is its data dir
    asked = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        said_down = False
        while not webhook.fired("redis", asked) and time.monotonic() - asked < webhook.for_s + 30:
            said_down = said_down or bool(_prometheus(stack, 'redis_up{job="redis"} == 0'))
            time.sleep(0.5)
        fired = webhook.fired("redis", asked)
        said_down = said_down or bool(_prometheus(stack, 'redis_up{job="redis"} == 0'))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert fired, {"within_s": webhook.for_s + 30, "received": [d for _, d in webhook.received]}
    assert said_down, "the alert did not come from the exporter's redis_up 0"
    print(f"alert: redis hung, webhook got ServiceNoHealthyInstance {fired[0] - asked:.1f} s later "
          f"(for = {webhook.for_s} s)")
    deadline = time.monotonic() + 30
    while not _prometheus(stack, 'redis_up{job="redis"} == 1'):
        assert time.monotonic() < deadline, "the exporter does not see Redis back"
        time.sleep(1)


def test_stopping_stt_fires_the_no_healthy_instance_alert_to_the_webhook(
        stack: Stack, webhook: Webhook) -> None:
    """Last: stops stt. `jbctl stop stt` (the service is gone, not hung: a hung stt is
    restarted by check_restart, as the mt test shows) fires ServiceNoHealthyInstance, which
    Alertmanager, redeployed with a webhook on this module's receiver, posts within the rule's
    `for` (jobs/vars/dev.hcl alert_down_for) plus 30 s."""
    import time

    c = stack.cluster
    for_s = webhook.for_s
    asked = time.monotonic()  # alerts from before this moment do not count
    res = c.jbctl("stop", "stt", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    stopped = time.monotonic()
    assert not c.passing("stt")
    while not webhook.fired("stt", asked) and time.monotonic() - stopped < for_s + 30:
        time.sleep(0.5)
    fired = webhook.fired("stt", asked)
    assert fired, {"within_s": for_s + 30, "received": [d for _, d in webhook.received]}
    print(f"alert: stt stopped (jbctl stop took {stopped - asked:.1f} s), webhook got "
          f"ServiceNoHealthyInstance {fired[0] - stopped:.1f} s later (for = {for_s} s)")
