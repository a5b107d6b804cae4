"""The few Consul HTTP endpoints jbctl needs, over jbctl's one HTTP stack (:mod:`http_api`)."""

from __future__ import annotations

from typing import Any

from jbcalling.cli.http_api import Agent, AgentApi
from jbcalling.cli.settings import CliSettings


class ConsulApi(AgentApi):
    def __init__(self, settings: CliSettings) -> None:
        agent = Agent(
            product="Consul", addr=settings.consul_http_addr, token_header="X-Consul-Token",
            token=settings.consul_http_token, cacert=settings.consul_cacert,
            unreachable_hint="start the dev cluster with `jbctl cluster up`, or set CONSUL_HTTP_ADDR",
            token_hint="set CONSUL_HTTP_TOKEN to a valid ACL token",
        )
        super().__init__(agent, settings.http_timeout_s)

    def leader(self) -> str:
        return str(self.json("GET", "status/leader", "read the leader"))

    def services(self) -> dict[str, list[str]]:
        return dict(self.json("GET", "catalog/services", "list services"))

    def service_health(self, name: str) -> list[dict[str, Any]]:
        """Every instance of ``name`` with its node and checks (healthy or not)."""
        return list(self.json("GET", f"health/service/{name}", f"read the health of {name}"))

    def checks_in_state(self, state: str = "any") -> list[dict[str, Any]]:
        return list(self.json("GET", f"health/state/{state}", f"list checks in state {state}"))
