"""The three endpoints every service has: ``/health``, ``/ready`` and ``/metrics``.

``/health`` says the process is alive, which code it runs (``version``: the installed package's
version) and which release the job stamped on it (``release``), so that a rollback that brings back
the previous release venv shows in both. ``/ready`` runs the service's readiness probe (models
loaded, dependencies reachable) and reports load and capacity as JSON; it answers 503 when not
ready, and that is what the Consul check and the Consul UI show. ``/metrics`` is Prometheus text:
the service's own ``jb_`` metrics, the HTTP request counts and latencies below, and the process
(CPU seconds, resident memory, open files), platform and garbage-collector collectors of
prometheus_client, on the service's own registry (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from jbcalling.common.errors import install_handlers
from jbcalling.common.version import __version__


@dataclass
class Readiness:
    """What a readiness probe found: ready or not, and why, plus load and capacity figures."""

    ready: bool
    checks: dict[str, str] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)


Probe = Callable[[], Awaitable[Readiness]]


def install(app: FastAPI, *, service: str, version: str, probe: Probe,
            registry: CollectorRegistry) -> None:
    """Add /health, /ready and /metrics to ``app``, count every request in ``registry``, and
answer every error as ``{"error": {"code", "message"}}`` (jbcalling/common/errors.py).

    ``version`` is the release the job stamped (the service settings' ``version``); the code's
    own version is the installed package's, read here.
    """
    started = time.time()
    # Each service has a registry of its own (no global state between the apps a test builds in
    # one process), so the default registry's process collectors are added to it here.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    requests = Counter("jb_http_requests_total", "HTTP requests served", ["path", "status"],
                       registry=registry)
    latency = Histogram("jb_http_request_seconds", "HTTP request latency, seconds", ["path"],
                        registry=registry)
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "alive", "service": service, "version": __version__,
                "release": version, "uptime_s": round(time.time() - started, 1)}

    # Both answers in the schema: a client (and the fuzz suite) must find 503 documented.
    @router.get("/ready", responses={503: {"description": "Not ready: see checks."}})
    async def ready() -> JSONResponse:
        result = await probe()
        body = {"ready": result.ready, "service": service, "version": __version__,
                "release": version,
                "checks": result.checks, "load": result.load}
        return JSONResponse(body, status_code=200 if result.ready else 503)

    @router.get("/metrics", response_class=PlainTextResponse,
                responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}})
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    install_handlers(app)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        # The router sets the matched route during call_next; label by its template, not the
        # raw path, so that ids in URLs do not explode the label set.
        path = getattr(request.scope.get("route"), "path", "unmatched")
        latency.labels(path).observe(time.perf_counter() - t0)
        requests.labels(path, str(response.status_code)).inc()
        return response
