"""The few Consul HTTP endpoints jbctl needs, over httpx."""

from __future__ import annotations

from typing import Any

import httpx

from jbcalling.cli.errors import ClusterUnreachable, JbctlError
from jbcalling.cli.settings import CliSettings


class ConsulApi:
    def __init__(self, settings: CliSettings) -> None:
        self.addr = settings.consul_http_addr
        headers = {"X-Consul-Token": settings.consul_http_token} if settings.consul_http_token else {}
        # https: the CA file when given, the system's CAs otherwise. Plain http has no TLS to
        # verify, and building the unused TLS context would cost every jbctl run ~60 ms of CPU.
        verify: str | bool = (settings.consul_cacert or True) if self.addr.startswith("https:") else False
        self.http = httpx.Client(base_url=self.addr, headers=headers, verify=verify,
                                 timeout=settings.http_timeout_s)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ClusterUnreachable(
                f"cannot reach Consul at {self.addr} ({exc.__class__.__name__}: {exc})",
                hint="start the dev cluster with `jbctl cluster up`, or set CONSUL_HTTP_ADDR",
            ) from exc
        if resp.status_code in (401, 403):
            raise ClusterUnreachable(f"Consul at {self.addr} refused the token: {resp.text.strip()}",
                                     hint="set CONSUL_HTTP_TOKEN to a valid ACL token")
        if resp.status_code >= 400:
            raise JbctlError(f"Consul {path} answered {resp.status_code}: {resp.text.strip()}")
        return resp.json()

    def leader(self) -> str:
        return str(self._get("/v1/status/leader"))

    def services(self) -> dict[str, list[str]]:
        return self._get("/v1/catalog/services")

    def service_health(self, name: str) -> list[dict[str, Any]]:
        """Every instance of ``name`` with its node and checks (healthy or not)."""
        return self._get(f"/v1/health/service/{name}")

    def checks_in_state(self, state: str = "any") -> list[dict[str, Any]]:
        return self._get(f"/v1/health/state/{state}")

    def close(self) -> None:
        self.http.close()
