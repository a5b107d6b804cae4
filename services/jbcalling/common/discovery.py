"""Finding another service: a fixed URL when configured, else a healthy instance from Consul.

Services balance on the client side: each call picks among the instances Consul reports as
passing (``/v1/health/service/<name>?passing``), cached for a few seconds; after a failed call
the list is asked for again (callers that fail many at once, e.g. every speaker's stt stream
when stt stops, ask at most every ``refresh_s``: one query for all).
"""

from __future__ import annotations

import functools
import random
import ssl
import time

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context per process for short-lived httpx clients: building one (what httpx does
    for every new client, https or not) loads the CA bundle, about 80 ms of CPU on the 2-core
    machine - measured as a fifth of the gateway's CPU when it was done per Consul query."""
    return ssl.create_default_context()


class NoInstance(Exception):
    """No healthy instance of a service: the caller degrades rather than fails (docs/protocol.md,
    "Degradation events")."""


class Discovery:
    def __init__(self, consul_addr: str, fixed: dict[str, str] | None = None,
                 ttl_s: float = 5.0, token: str = "") -> None:
        self.consul = consul_addr.rstrip("/")
        self.fixed = {k: v.rstrip("/") for k, v in (fixed or {}).items() if v}
        self.ttl_s = ttl_s
        self.headers = {"X-Consul-Token": token} if token else {}
        self._cache: dict[str, tuple[float, float, list[str]]] = {}  # fetched, expires, URLs

    async def urls(self, service: str) -> list[str]:
        if service in self.fixed:
            return [self.fixed[service]]
        hit = self._cache.get(service)
        if hit and time.monotonic() < hit[1]:
            return hit[2]
        try:
            async with httpx.AsyncClient(timeout=2.0, headers=self.headers, verify=tls()) as http:
                resp = await http.get(f"{self.consul}/v1/health/service/{service}",
                                      params={"passing": "1"})
                resp.raise_for_status()
                found = [f"http://{i['Service']['Address'] or i['Node']['Address']}:"
                         f"{i['Service']['Port']}" for i in resp.json()]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise NoInstance(f"cannot ask Consul for {service}: {exc}") from exc
        now = time.monotonic()
        self._cache[service] = (now, now + self.ttl_s, found)
        return found

    async def pick(self, service: str) -> str:
        found = await self.urls(service)
        if not found:
            raise NoInstance(f"no healthy {service} instance in Consul")
        return random.choice(found)

    def forget(self, service: str, refresh_s: float = 0.0) -> None:
        """After a failed call: the next one asks Consul again, once the cached list is
        ``refresh_s`` old."""
        hit = self._cache.get(service)
        if hit is None:
            return
        fetched, expires, found = hit
        if time.monotonic() - fetched >= refresh_s:
            del self._cache[service]
        else:
            self._cache[service] = (fetched, min(expires, fetched + refresh_s), found)
