"""The README's first command, `bash tools/up.sh`, brings the whole stack up and prints URLs.

The stack it brings up is shared by every test of this module (one cluster: `up.sh` takes
about 1.5 minutes), so the observability tests run against the same deployment a newcomer
gets. It runs on its own port offset and state dir (``JB_TEST_UP_OFFSET`` picks another offset
when two checkouts run it side by side), so it never touches a developer's cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jbctl_helpers import ROOT, Cluster, base_env

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
    # The whole pipeline, stage by stage (latency targets are benchmarks, not asserted here).
    probe = stack.cluster.jbctl("--json", "probe", "-n", "2", "--timeout", "40", timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    summary = json.loads(probe.stdout)["summary"]
    assert all(s["n"] == 2 and s["missing"] == 0 for s in summary.values()), summary
    assert all(u["recognized"] for u in json.loads(probe.stdout)["utterances"])


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
