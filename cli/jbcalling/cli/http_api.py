"""jbctl's one HTTP stack: an httpx client to a Nomad or Consul agent, with errors that say what to do.

Both agents take the same things (an address, an ACL token header, a CA file for https, a client
certificate for mutual TLS), and fail the same ways; :class:`AgentApi` maps each failure to a
:mod:`jbcalling.cli.errors` error with a hint, so NomadApi and ConsulApi only list endpoints.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from jbcalling.cli.errors import ClusterUnreachable, JbctlError


class AgentError(JbctlError):
    """The agent answered with an error status (``status``, ``body``)."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Agent:
    """How to reach one agent, and what to tell the operator when that fails."""

    product: str  # "Nomad" or "Consul"
    addr: str
    token_header: str  # X-Nomad-Token / X-Consul-Token
    token: str
    cacert: str
    client_cert: str = ""
    client_key: str = ""
    unreachable_hint: str = ""
    token_hint: str = ""


class AgentApi:
    def __init__(self, agent: Agent, timeout_s: float, params: dict[str, str] | None = None) -> None:
        self.agent = agent
        self.addr = agent.addr
        self.timeout = timeout_s
        headers = {agent.token_header: agent.token} if agent.token else {}
        # Plain http has no TLS to verify, and building an unused TLS context costs every run
        # ~60 ms of CPU.
        verify = _tls(agent) if agent.addr.startswith("https:") else False
        self.http = httpx.Client(base_url=agent.addr.rstrip("/") + "/v1/", headers=headers,
                                 params=params or {}, verify=verify, timeout=timeout_s)

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """``method path`` (relative to /v1/); raises with a hint naming ``what`` was tried."""
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(what, exc) from exc
        self._check(resp, what)
        return resp

    def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, what, **kwargs)
        return resp.json() if resp.content else None

    @contextmanager
    def stream(self, method: str, path: str, what: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream(method, path, **kwargs) as resp:
                if resp.status_code >= 400:
                    resp.read()
                self._check(resp, what)
                yield resp
        except httpx.HTTPError as exc:
            raise self._unreachable(what, exc) from exc

    def close(self) -> None:
        self.http.close()

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code < 400:
            return
        body = resp.text.strip()
        name = self.agent.product
        if resp.status_code in (401, 403) or "ACL token not found" in body:
            raise ClusterUnreachable(
                f"{name} at {self.addr} refused the token while trying to {what}: {body}",
                hint=self.agent.token_hint)
        raise AgentError(f"{name} could not {what}: {body or resp.status_code}",
                         resp.status_code, body)

    def _unreachable(self, what: str, exc: httpx.HTTPError) -> ClusterUnreachable:
        name = self.agent.product
        if isinstance(exc, httpx.TimeoutException):
            return ClusterUnreachable(f"{name} at {self.addr} timed out while trying to {what}",
                                      hint=f"check the cluster's health and the {name} address")
        return ClusterUnreachable(f"cannot reach {name} at {self.addr} ({_short(exc)})",
                                  hint=self.agent.unreachable_hint)


def _tls(agent: Agent) -> ssl.SSLContext:
    """The CA file when given, the system's CAs otherwise (never unverified); the client
    certificate when the agent wants one (mutual TLS). One SSLContext, since httpx ignores
    ``cert=`` when ``verify`` is a path."""
    ctx = ssl.create_default_context(cafile=agent.cacert or None)
    if agent.client_cert:
        try:
            ctx.load_cert_chain(agent.client_cert, agent.client_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise JbctlError(f"cannot load the client certificate {agent.client_cert} for "
                             f"{agent.product}: {exc}",
                             hint="check NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY") from exc
    return ctx


def _short(err: Exception) -> str:
    text = str(err)
    if "Connection refused" in text or "All connection attempts failed" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted: set the CA file (NOMAD_CACERT / CONSUL_CACERT)"
    return f"{err.__class__.__name__}: {text[:200]}"
