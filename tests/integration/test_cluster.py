"""jbctl against a real local Nomad + Consul dev cluster (ACLs on, as in production).

The tests share one cluster and run in file order: deploy, inspect, scale, a failed deploy
that Nomad reverts, a killed task, bad inputs, stop, ownership, cluster down.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jbctl_helpers import ROOT, Cluster, base_env, task_pids

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("jbstate")
    c = Cluster(base_env(state), state)
    up = c.jbctl("cluster", "up", "--acl", timeout=120)
    assert up.returncode == 0, up.stderr
    assert "Nomad UI:  http://127.0.0.1:14646/ui/" in up.stderr
    try:
        yield c
    finally:
        c.jbctl("cluster", "down", timeout=120)


def _pids(c: Cluster, needle: str) -> list[int]:
    return task_pids(needle, str(c.state_dir))


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_cluster_up_is_idempotent(cluster: Cluster) -> None:
    again = cluster.jbctl("cluster", "up", "--acl")
    assert again.returncode == 0 and "already running" in again.stderr
    assert cluster.jbctl("cluster", "status").returncode == 0


def test_deploy_redis_and_signaling(cluster: Cluster) -> None:
    res = cluster.jbctl("deploy", "redis", "signaling")
    assert res.returncode == 0, res.stderr
    assert "redis: healthy" in res.stderr and "signaling: healthy" in res.stderr
    (url,) = cluster.urls("signaling")
    ready = httpx.get(url + "/ready", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    assert len(cluster.passing("redis")) == 1


def test_status_json_reports_both(cluster: Cluster) -> None:
    doc = cluster.jbctl_json("status")
    by_name = {s["service"]: s for s in doc["services"]}
    for name in ("redis", "signaling"):
        s = by_name[name]
        assert s["deployed"] and s["status"] == "running" and s["managed"]
        assert (s["running"], s["desired"], s["healthy"]) == (1, 1, 1)
        # signaling: /ready and its liveness check on /health; redis: one TCP check
        assert s["checks"] == {"passing": 2 if name == "signaling" else 1}, s
        assert s["nodes"] == ["jb-dev"]
        assert not s["drift"]


def test_unchanged_deploy_does_not_redeploy(cluster: Cluster) -> None:
    # Only the two deployed jobs: a bare `deploy` would also roll out every other job.
    before = cluster.nomad_get("/v1/job/signaling")["Version"]
    res = cluster.jbctl("deploy", "redis", "signaling")
    assert res.returncode == 0, res.stderr
    assert "signaling: no changes" in res.stderr and "redis: no changes" in res.stderr
    assert "registered" not in res.stderr
    assert cluster.nomad_get("/v1/job/signaling")["Version"] == before
    assert cluster.jbctl("plan", "redis", "signaling").returncode == 0


def test_json_lines_and_config(cluster: Cluster) -> None:
    import json

    res = cluster.jbctl("--json", "deploy", "signaling")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [e["event"] for e in events][:1] == ["plan"]
    assert {"event": "result", "service": "signaling", "status": "healthy"}.items() <= events[-2].items()
    conf = cluster.jbctl_json("config")
    assert conf["nomad_token"].endswith("(redacted)") and cluster.token not in json.dumps(conf)
    assert conf["nomad_addr"] == cluster.nomad


def test_plan_shows_a_change_and_exits_1(cluster: Cluster) -> None:
    res = cluster.jbctl("plan", "signaling", "--var", "signaling_memory=160")
    assert res.returncode == 1, res.stderr
    assert "MemoryMB: '128' => '160'" in res.stderr


def test_prod_variant_renders_and_plans(cluster: Cluster) -> None:
    """Every job also renders with jobs/vars/prod.hcl and passes Nomad's validation in a plan."""
    res = cluster.jbctl("--env", "prod", "plan", env={"NOMAD_ADDR": cluster.nomad,
                                                      "CONSUL_HTTP_ADDR": cluster.consul,
                                                      "NOMAD_TOKEN": cluster.token})
    assert res.returncode == 1, res.stderr  # changes (exec driver, prod resources), no error
    assert "Driver: 'raw_exec' => 'exec'" in res.stderr


def test_scale_signaling_to_two(cluster: Cluster) -> None:
    res = cluster.jbctl("scale", "signaling", "2")
    assert res.returncode == 0, res.stderr
    assert len(cluster.passing("signaling")) == 2
    out_of_bounds = cluster.jbctl("scale", "signaling", "9")
    assert out_of_bounds.returncode == 2 and "1 to 4 instances" in out_of_bounds.stderr
    assert cluster.jbctl("scale", "signaling", "1").returncode == 0


def test_failed_deploy_is_reverted_and_named(cluster: Cluster) -> None:
    before = cluster.nomad_get("/v1/job/signaling")["Version"]
    res = cluster.jbctl("deploy", "signaling", "--var", "redis_url=redis://127.0.0.1:1/0")
    assert res.returncode == 1, res.stderr
    assert "signaling: reverted" in res.stderr
    assert f"rolling back to job version {before}" in res.stderr
    assert "unreachable" in res.stderr  # the failing /ready check's output names the cause
    job = cluster.nomad_get("/v1/job/signaling")
    env_tpl = job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"]
    assert "127.0.0.1:1/0" not in env_tpl  # the running version is the previous spec again
    for url in cluster.urls("signaling"):
        assert httpx.get(url + "/ready", timeout=5).status_code == 200


def test_logs_show_the_service_log(cluster: Cluster) -> None:
    res = cluster.jbctl("logs", "signaling", "--stderr")
    assert res.returncode == 0, res.stderr
    assert '"msg": "signaling started"' in res.stdout


def test_killed_task_is_restarted_and_health_recovers(cluster: Cluster) -> None:
    (pid,) = _pids(cluster, "jb-signaling")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _pids(cluster, "jb-signaling") not in ([], [pid]), 60, "a new process")
    _wait(lambda: cluster.jbctl("health").returncode == 0, 60, "health to pass again")
    alloc = next(a for a in cluster.nomad_get("/v1/job/signaling/allocations")
             if a["ClientStatus"] == "running")
    assert alloc["TaskStates"]["signaling"]["Restarts"] >= 1


def test_rollback_to_the_previous_different_version(cluster: Cluster) -> None:
    before = cluster.nomad_get("/v1/job/signaling")["Version"]
    res = cluster.jbctl("rollback", "signaling")
    assert res.returncode == 0, res.stderr
    # the auto-revert left a copy of the stable spec; the rollback goes past it, to the
    # version that ran two instances
    assert cluster.nomad_get("/v1/job/signaling")["Version"] == before + 1
    assert len(cluster.passing("signaling")) == 2
    assert cluster.jbctl("scale", "signaling", "1").returncode == 0


@pytest.mark.parametrize("args, env, code, words", [
    (["deploy", "nosuch"], {}, 2, "unknown service 'nosuch'"),
    (["status"], {"NOMAD_ADDR": "http://127.0.0.1:1"}, 3, "cannot reach Nomad"),
    (["deploy"], {"NOMAD_TOKEN": "00000000-0000-0000-0000-000000000000"}, 3, "refused the token"),
    (["deploy", "signaling", "--var", "nosuch=1"], {}, 2, "declares nosuch"),
    (["--env", "staging", "status"], {}, 2, "choose dev or prod"),
])
def test_bad_input_is_one_clear_line(cluster: Cluster, args: list[str], env: dict[str, str],
                                     code: int, words: str) -> None:
    before = cluster.nomad_get("/v1/job/signaling")["Version"]
    res = cluster.jbctl(*args, env=env)
    assert res.returncode == code, res.stderr
    assert words in res.stderr
    assert "Traceback" not in res.stderr
    assert cluster.nomad_get("/v1/job/signaling")["Version"] == before


def test_a_job_file_with_a_syntax_error_submits_nothing(cluster: Cluster, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "vars").mkdir(parents=True)
    for p in (ROOT / "jobs").glob("*.hcl"):
        (jobs / p.name).write_text(p.read_text())
    for p in (ROOT / "jobs" / "vars").glob("*.hcl"):
        (jobs / "vars" / p.name).write_text(p.read_text())
    broken = jobs / "signaling.nomad.hcl"
    broken.write_text(broken.read_text().replace("count = var.signaling_count",
                                                 "count = = var.signaling_count", 1))
    versions = {j: cluster.nomad_get(f"/v1/job/{j}")["Version"] for j in ("redis", "signaling")}
    res = cluster.jbctl("deploy", "--var", "redis_memory=200", env={"JB_JOBS_DIR": str(jobs)})
    assert res.returncode == 1, res.stderr
    assert f"{broken}:" in res.stderr and "nothing was submitted" in res.stderr
    assert "Traceback" not in res.stderr
    # redis comes first in deploy order and would change (redis_memory): it was not submitted
    assert {j: cluster.nomad_get(f"/v1/job/{j}")["Version"] for j in versions} == versions


def test_stop_all_purge_then_ownership_is_enforced(cluster: Cluster) -> None:
    res = cluster.jbctl("stop", "--all", "--purge")
    assert res.returncode == 0, res.stderr
    assert cluster.nomad_get("/v1/jobs") == []
    assert _pids(cluster, "jb-signaling") == [] and _pids(cluster, "redis-server") == []
    # A job named like ours that jbctl did not create is never overwritten.
    foreign = {"Job": {"ID": "redis", "Name": "redis", "Type": "batch", "Datacenters": ["dc1"],
                       "TaskGroups": [{"Name": "g", "Count": 0, "Tasks": [
                           {"Name": "t", "Driver": "raw_exec",
                            "Config": {"command": "/bin/true"}}]}]}}
    httpx.post(cluster.nomad + "/v1/jobs", json=foreign,
               headers={"X-Nomad-Token": cluster.token}, timeout=10).raise_for_status()
    res = cluster.jbctl("deploy", "redis")
    assert res.returncode == 1 and "not created by jbctl" in res.stderr
    assert cluster.nomad_get("/v1/job/redis")["Type"] == "batch"


def test_cluster_down_leaves_no_process(cluster: Cluster) -> None:
    res = cluster.jbctl("cluster", "down", timeout=120)
    assert res.returncode == 0, res.stderr
    assert _pids(cluster, "") == []
    assert cluster.jbctl("cluster", "status").returncode == 1
