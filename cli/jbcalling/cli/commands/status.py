"""``jbctl status``: every job's version, instances, nodes, Consul checks and drift; where to click."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import typer

from jbcalling.cli import endpoints, render
from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import EXIT_FAILED
from jbcalling.cli.monitor import alloc_of


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def collect(c: Ctx) -> dict[str, Any]:
    """One document: per service, what Nomad runs and what Consul says of it."""
    known = render.known_services(c.settings.jobs_dir)
    # The job list has no Version or Meta: read each job and its allocations. The reads are
    # independent, so they go out together (a status over six jobs is ~14 requests).
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks_f = pool.submit(c.consul.checks_in_state, "any")
        ingress_f = pool.submit(c.consul.service_health, "ingress")
        prometheus_f = pool.submit(c.consul.service_health, "prometheus")
        jobs = {j["ID"]: j for j in c.nomad.jobs()}
        details = {name: (pool.submit(c.nomad.job, name), pool.submit(c.nomad.allocations, name))
                   for name in jobs}
        checks = checks_f.result()
    by_alloc: dict[str, list[dict[str, Any]]] = {}
    for chk in checks:
        if chk.get("ServiceID"):
            by_alloc.setdefault(alloc_of({"Service": {"ID": chk["ServiceID"]}}), []).append(chk)
    services = []
    for name in known + sorted(set(jobs) - set(known)):
        job = details[name][0].result() if name in jobs else None
        if job is None:
            services.append({"service": name, "deployed": False})
            continue
        allocs = details[name][1].result() if job["Status"] != "dead" else []
        running = [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]
        states: Counter[str] = Counter()
        for a in running:
            for chk in by_alloc.get(a["ID"], []):
                states[chk["Status"]] += 1
        healthy = sum(1 for a in running
                      if by_alloc.get(a["ID"]) and all(ch["Status"] == "passing"
                                                       for ch in by_alloc[a["ID"]]))
        desired = 0 if job.get("Stop") else sum(tg.get("Count", 0)
                                                for tg in job.get("TaskGroups") or [])
        meta = job.get("Meta") or {}
        release = meta.get("jb_release", "")
        services.append({
            "service": name, "deployed": True, "status": job["Status"],
            "version": job.get("Version"), "release": release,
            "managed": meta.get(render.OWNER_KEY) == render.OWNER_VALUE,
            "drift": bool(release) and release != c.settings.release,
            "running": len(running), "desired": desired, "healthy": healthy,
            "nodes": sorted({a.get("NodeName", "") for a in running}),
            "checks": dict(states),
            "versions_running": sorted({a.get("JobVersion") for a in running}),
        })
    public = endpoints.public_urls(ingress_f.result())
    return {"release": c.settings.release, "env": c.settings.env,
            "nomad_addr": c.settings.nomad_addr, "services": services, "public_urls": public,
            "prometheus_urls": endpoints.prometheus_links(public, prometheus_f.result(),
                                                          direct=c.settings.env == "dev"),
            "nomad_ui": c.settings.nomad_addr + "/ui/",
            "consul_ui": c.settings.consul_http_addr + "/ui/"}


def status(ctx: typer.Context) -> None:
    """Show every service: version, running/desired/healthy, nodes, checks, release drift.

    Exit 1 when a deployed service has an instance that is not passing in Consul, or fewer
    passing instances than it wants (e.g. its only node is down and nothing runs).
    """
    c: Ctx = ctx.obj
    doc = collect(c)
    rows = []
    for s in doc["services"]:
        if not s["deployed"]:
            rows.append([s["service"], "-", "not deployed", "", "", "", ""])
            continue
        checks = ", ".join(f"{n} {st}" for st, n in sorted(s["checks"].items())) or "none"
        drift = f"{s['release']} (local {doc['release']})" if s["drift"] else s["release"]
        rows.append([s["service"], s["version"], s["status"],
                     f"{s['running']}/{s['desired']}/{s['healthy']}", ", ".join(s["nodes"]),
                     checks, drift])
    c.out.data(doc)
    c.out.table(f"jbcalling ({doc['env']}, {doc['nomad_addr']})",
                ["service", "version", "status", "run/want/ok", "nodes", "checks", "release"], rows)
    # Where to click, the page participants open last (tools/up.sh ends with it too).
    c.out.say(f"Nomad UI:  {doc['nomad_ui']}")
    c.out.say(f"Consul UI: {doc['consul_ui']}")
    for url in doc["prometheus_urls"]:
        c.out.say(f"Prometheus: {url}")
    if not doc["prometheus_urls"]:
        c.out.say("Prometheus: not deployed or not healthy (`jbctl deploy prometheus`)")
    for url in doc["public_urls"]:
        c.out.say(f"participants open: {url}/")
    if not doc["public_urls"]:
        c.out.say("no healthy ingress in Consul: no page for participants yet (`jbctl deploy ingress`)")
    if any(s["deployed"] and s["status"] != "dead" and s["healthy"] < max(s["running"], s["desired"])
           for s in doc["services"]):
        raise typer.Exit(EXIT_FAILED)
