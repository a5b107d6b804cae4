"""What `jbctl top` asks Prometheus, over jbctl's one HTTP stack (:mod:`http_api`).

Prometheus is found in Consul (service ``prometheus``, its route prefix in the meta
``path_prefix``). :func:`snapshot` sends the queries of :data:`QUERIES` together and
:func:`assemble`, a pure function, turns their answers into one document: per service, the
rooms and participants, per caption language pair. Prometheus's job label is the Consul service
name, so the per-service figures group by ``job``.
"""

from __future__ import annotations

import base64
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jbcalling.cli import endpoints
from jbcalling.cli.consul_api import ConsulApi
from jbcalling.cli.errors import JbctlError
from jbcalling.cli.http_api import Agent, AgentApi, AgentError
from jbcalling.cli.nomad_api import NomadApi
from jbcalling.cli.settings import CliSettings

SERVICE = "prometheus"
PASSWORD_VAR, PASSWORD_ITEM = "nomad/jobs/ingress", "prometheus_password"
DEPLOY_HINT = "deploy it with `jbctl deploy prometheus`"

# Instant queries; each answers a vector whose labels name the service (job), room or pair.
QUERIES = {
    "up": "sum by (job) (up)",
    "targets": "count by (job) (up)",
    "cpu": "sum by (job) (rate(process_cpu_seconds_total[1m]))",
    "memory": "sum by (job) (process_resident_memory_bytes)",
    "requests": "sum by (job) (rate(jb_http_requests_total[1m]))",
    "errors": 'sum by (job) (rate(jb_http_requests_total{status=~"5.."}[1m]))',
    # Rooms carry no room id in any metric (a room id is personal data): the counts are totals.
    # A room spread over two signaling replicas counts on each.
    "rooms": "sum(jb_signaling_rooms)",
    "sockets": "sum(jb_signaling_sockets)",
    "sizes": "sum by (participants) (jb_signaling_rooms_by_participants)",
    "media_rooms": "sum(jb_gateway_rooms)",
    "media_peers": "sum(jb_gateway_peers)",
    "p50": "max by (kind, source, lang) (jb:caption_latency_seconds:p50_5m)",
    "p95": "max by (kind, source, lang) (jb:caption_latency_seconds:p95_5m)",
}
# The sparkline: p95 over the last minutes, one point per step.
HISTORY = QUERIES["p95"]
HISTORY_STEP_S = 30
HISTORY_POINTS = 20  # the last 10 minutes
PAIR = ("kind", "source", "lang")


class PrometheusApi(AgentApi):
    """Prometheus's HTTP API at ``base`` (its URL with the route prefix, e.g. .../prometheus/)."""

    def __init__(self, base: str, settings: CliSettings, auth: tuple[str, str] | None = None) -> None:
        # Through the ingress: basic auth (its public certificate is checked against the
        # system's CAs); at its own address: plain http on the private network.
        basic = "Basic " + base64.b64encode(":".join(auth).encode()).decode() if auth else ""
        agent = Agent(product="Prometheus", addr=base.rstrip("/") + "/api",
                      token_header="Authorization", token=basic, cacert="",
                      unreachable_hint=f"see `jbctl status`, or {DEPLOY_HINT}",
                      token_hint=f"check --user (the ingress's prometheus_user) and the password "
                                 f"{PASSWORD_ITEM} in Nomad Variable {PASSWORD_VAR}")
        super().__init__(agent, settings.http_timeout_s)
        self.base = self.addr = base  # the URL the operator knows, in messages

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        return self._data("query", params, promql)

    def query_range(self, promql: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        return self._data("query_range", params, promql)

    def _data(self, endpoint: str, params: dict[str, str], promql: str) -> list[dict[str, Any]]:
        try:
            doc = self.json("GET", endpoint, f"run the query {promql}", params=params)
        except AgentError as exc:
            raise JbctlError(f"Prometheus refused the query {promql}: {exc.body[:300]}",
                             hint="check that Prometheus's version takes this query") from exc
        return list((doc or {}).get("data", {}).get("result", []))


def locate(consul: ConsulApi) -> str:
    """The URL of a passing Prometheus instance, its route prefix included (ends with /)."""
    instances = consul.service_health(SERVICE)
    if not instances:
        raise JbctlError("Prometheus is not deployed: Consul has no `prometheus` service",
                         hint=DEPLOY_HINT)
    passing = [i for i in instances
               if all(c.get("Status") == "passing" for c in i.get("Checks") or [])]
    if not passing:
        raise JbctlError("Prometheus is deployed but no instance passes its Consul checks",
                         hint="see `jbctl status` and `jbctl logs prometheus --stderr`")
    return endpoints.prometheus_url(passing[0])


def connect(consul: ConsulApi, nomad: NomadApi, settings: CliSettings, via: str,
            user: str) -> PrometheusApi:
    """Prometheus at its own address (``via`` "direct"), or through the ingress's /prometheus/
    as the operator (``via`` "ingress": basic auth, the password jbctl generated in Nomad)."""
    direct = locate(consul)
    if via == "direct":
        return PrometheusApi(direct, settings)
    public = endpoints.public_urls(consul.service_health("ingress"))
    if not public:
        raise JbctlError("no healthy ingress in Consul to reach Prometheus through",
                         hint="deploy it with `jbctl deploy ingress`, or use --via direct")
    items = (nomad.variable(PASSWORD_VAR) or {}).get("Items") or {}
    if not items.get(PASSWORD_ITEM):
        raise JbctlError(f"Nomad Variable {PASSWORD_VAR} has no {PASSWORD_ITEM}",
                         hint="`jbctl deploy ingress` generates it; or use --via direct")
    return PrometheusApi(public[0] + "/prometheus/", settings, auth=(user, items[PASSWORD_ITEM]))


def snapshot(api: PrometheusApi, services: list[str], now: float | None = None) -> dict[str, Any]:
    """One document of every figure, as Prometheus has them at ``now``."""
    at = time.time() if now is None else now
    with ThreadPoolExecutor(max_workers=len(QUERIES) + 1) as pool:
        futures = {name: pool.submit(api.query, q, at) for name, q in QUERIES.items()}
        start = at - (HISTORY_POINTS - 1) * HISTORY_STEP_S
        history_f = pool.submit(api.query_range, HISTORY, start, at, HISTORY_STEP_S)
        answers = {name: f.result() for name, f in futures.items()}
        history = history_f.result()
    return {"prometheus": api.base, "time": at, **assemble(answers, history, services, start)}


def _value(sample: dict[str, Any]) -> float | None:
    v = float(sample["value"][1])
    return None if math.isnan(v) else v


def _by(answer: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float | None]:
    return {tuple(s["metric"].get(label, "") for label in labels): _value(s) for s in answer}


def _total(answer: list[dict[str, Any]]) -> int | None:
    values = [v for v in (_value(s) for s in answer) if v is not None]
    return int(sum(values)) if values else None


def _slots(values: list[list[Any]], start: float) -> list[float | None]:
    """A range query's points on the fixed grid from ``start`` (None where it has none, so a
    sparkline shows when the figures were missing)."""
    slots: list[float | None] = [None] * HISTORY_POINTS
    for ts, v in values:
        i = round((float(ts) - start) / HISTORY_STEP_S)
        if 0 <= i < HISTORY_POINTS and not math.isnan(float(v)):
            slots[i] = float(v)
    return slots


def assemble(answers: dict[str, list[dict[str, Any]]], history: list[dict[str, Any]],
             services: list[str], start: float) -> dict[str, Any]:
    """The document of :func:`snapshot` from the queries' answers (``services``: those that
    must appear even when Prometheus has no target for them; ``start``: the history's first
    point's time)."""
    per = {name: _by(answers.get(name, []), "job") for name in
           ("up", "targets", "cpu", "memory", "requests", "errors")}
    jobs = list(services) + sorted({j for (j,) in per["targets"]} - set(services))
    rows = []
    for job in jobs:
        up, targets = per["up"].get((job,)), per["targets"].get((job,))
        rows.append({"service": job, "instances_up": int(up or 0), "targets": int(targets or 0),
                     "cpu_cores": per["cpu"].get((job,)), "memory_bytes": per["memory"].get((job,)),
                     "requests_per_s": per["requests"].get((job,)),
                     "errors_per_s": per["errors"].get((job,), 0.0 if (job,) in per["requests"]
                                                       else None)})
    rooms: dict[str, Any] = {name: _total(answers.get(key, [])) for name, key in (
        ("rooms", "rooms"), ("participants", "sockets"), ("media_rooms", "media_rooms"),
        ("media_peers", "media_peers"))}
    sizes = _by(answers.get("sizes", []), "participants")
    # "1", "2", ... "10+": in numeric order; a size no room has right now is absent
    rooms["by_participants"] = {n: int(v or 0) for (n,), v in
                                sorted(sizes.items(), key=lambda kv: int(kv[0][0].rstrip("+")))
                                if v}
    p50, p95 = _by(answers.get("p50", []), *PAIR), _by(answers.get("p95", []), *PAIR)
    series = {tuple(s["metric"].get(label, "") for label in PAIR):
              _slots(s.get("values", []), start)
              for s in history}
    captions = [{"kind": k, "source": src, "lang": lang, "p50_s": p50.get((k, src, lang)),
                 "p95_s": p95.get((k, src, lang)),
                 "p95_history_s": series.get((k, src, lang), [None] * HISTORY_POINTS)}
                for k, src, lang in sorted(set(p50) | set(p95))]
    return {"services": rows, "rooms": rooms, "captions": captions}
