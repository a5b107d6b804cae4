"""The Consul registration of every jbcalling service, as Nomad parses its job file: the tag and
meta Prometheus and the Consul UI read, and a liveness check that Nomad restarts on, with a
grace that outlasts slow model loading (docs/operations.md, "Restarts of hung processes")."""

from __future__ import annotations

from typing import Any

import pytest
from test_jobs_render import rendered

pytestmark = pytest.mark.unit
JB_SERVICES = ("redis", "signaling", "ingress", "stt", "mt", "tts", "gateway")
WITH_METRICS = ("signaling", "stt", "mt", "tts", "gateway")
# no /metrics of their own: an exporter task beside them answers Prometheus (tag jb-exporter)
WITH_EXPORTER = {"redis": "exporter", "ingress": "probe"}
LOADS_MODELS = ("stt", "mt", "tts")
NS = 1_000_000_000


def _service(job: dict[str, Any]) -> dict[str, Any]:
    (group,) = job["TaskGroups"]
    (service,) = group["Services"]
    return dict(service)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_service_is_tagged_and_restarted_when_it_stops_answering(env: str) -> None:
    for name in JB_SERVICES:
        job = rendered(name, env)
        service = _service(job)
        meta = service["Meta"]
        assert meta["version"] == "1.2.3" and meta["role"] and meta["dashboard"].startswith(
            "/prometheus/"), (name, meta)
        assert ("jb-metrics" in service["Tags"]) == (name in WITH_METRICS), name
        if name in WITH_METRICS:
            assert meta["metrics_path"] == "/metrics", name
        assert ("jb-exporter" in service["Tags"]) == (name in WITH_EXPORTER), name
        if name in WITH_EXPORTER:
            # the exporter's own port, a port of the group, and a task that listens on it
            (group,) = job["TaskGroups"]
            ports = {p["Label"] for n in group["Networks"] for p in n["DynamicPorts"]}
            port = meta["metrics_port"].removeprefix("${NOMAD_PORT_").removesuffix("}")
            assert port in ports and port != service["PortLabel"], (name, meta, ports)
            task = next(t for t in group["Tasks"] if t["Name"] == WITH_EXPORTER[name])
            assert any(f"${{NOMAD_ADDR_{port}}}" in a for a in task["Config"]["args"]), task
        restarting = [c for c in service["Checks"] if (c.get("CheckRestart") or {}).get("Limit")]
        assert restarting, f"{name}: no check restarts a hung process"
        for check in restarting:
            assert check["CheckRestart"]["Limit"] >= 2, (name, "one slow answer is not a hang")
            if name in LOADS_MODELS:
                assert check["CheckRestart"]["Grace"] >= job["Update"]["HealthyDeadline"] >= 60 * NS
            else:
                assert check["CheckRestart"]["Grace"] >= 10 * NS, name
        if name not in ("redis", "ingress"):
            # a restart cannot fix what /ready reports (Redis down, a missing model): only the
            # liveness check /health restarts
            (alive,) = restarting
            assert alive["Path"] == "/health", name
            assert any(c["Path"] == "/ready" and not c.get("CheckRestart")
                       for c in service["Checks"]), name
