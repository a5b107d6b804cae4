"""The Nomad HTTP API as jbctl uses it: python-nomad, plus the calls it lacks.

python-nomad covers jobs, versions, plans, deployments and allocations; parsing with HCL2
variables, job scaling and blocking queries go through its generic ``request``. Every failure
becomes a :mod:`jbcalling.cli.errors` error with a hint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import nomad
import nomad.api.exceptions as nexc
import requests
from nomad.api.base import Requester

from jbcalling.cli.errors import ClusterUnreachable, JbctlError
from jbcalling.cli.settings import CliSettings


class NomadError(JbctlError):
    """Nomad answered with an error status."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class _Raw(Requester):
    """A requester for any path under /v1 (python-nomad's classes each own one prefix)."""

    ENDPOINT = ""

    def _endpoint_builder(self, *args: str) -> str:
        return self.version + "/" + "/".join(a.strip("/") for a in args if a)


class NomadApi:
    def __init__(self, settings: CliSettings) -> None:
        self.addr = settings.nomad_addr
        url = urlparse(settings.nomad_addr)
        # Never verify=False: the CA file when given, the system's CAs otherwise.
        verify: str | bool = settings.nomad_cacert or True
        self.client = nomad.Nomad(
            address=settings.nomad_addr, token=settings.nomad_token or None,
            region=settings.nomad_region or None, verify=verify,
            secure=url.scheme == "https", timeout=int(settings.http_timeout_s),
        )
        self.timeout = settings.http_timeout_s
        self.raw = _Raw(**self.client.requester_settings)

    # ---- error mapping -------------------------------------------------------------------
    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except nexc.URLNotAuthorizedNomadException as exc:
            raise ClusterUnreachable(
                f"Nomad at {self.addr} refused the token while trying to {what}",
                hint="set NOMAD_TOKEN to a valid ACL token (see docs/runbook.md#tokens)",
            ) from exc
        except nexc.TimeoutNomadException as exc:
            raise ClusterUnreachable(f"Nomad at {self.addr} timed out while trying to {what}",
                                     hint="check the cluster's health and NOMAD_ADDR") from exc
        except nexc.BaseNomadException as exc:
            resp = exc.nomad_resp
            if isinstance(resp, requests.Response):
                body = resp.text.strip()
                if resp.status_code in (401, 403) or "ACL token not found" in body:
                    raise ClusterUnreachable(
                        f"Nomad at {self.addr} refused the token while trying to {what}: {body}",
                        hint="set NOMAD_TOKEN to a valid ACL token",
                    ) from exc
                raise NomadError(f"Nomad could not {what}: {body}", resp.status_code, body) from exc
            raise ClusterUnreachable(
                f"cannot reach Nomad at {self.addr} ({_short(resp)})",
                hint="start the dev cluster with `jbctl cluster up`, or set NOMAD_ADDR "
                     "(and NOMAD_CACERT for https)",
            ) from exc

    def _get(self, path: str, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> tuple[Any, int]:
        resp = self._call(f"read {path}", self.raw.request, path, method="get",
                          params=params or {}, timeout=timeout or self.timeout)
        index = int(resp.headers.get("X-Nomad-Index", "0") or 0)
        return resp.json(), index

    def _raw(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        resp = self._call(what, self.raw.request, path, method=method, **kwargs)
        return resp.json() if resp.content else None

    # ---- reads ---------------------------------------------------------------------------
    def leader(self) -> str:
        return str(self._raw("get", "status/leader", "read the leader"))

    def check_token(self) -> None:
        """Fail with ClusterUnreachable when Nomad does not answer or refuses the token."""
        self._raw("get", "jobs", "list jobs")

    def job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._call(f"read job {job_id}", self.client.job.get_job, job_id)
        except NomadError as exc:
            if exc.status == 404:
                return None
            raise

    def jobs(self) -> list[dict[str, Any]]:
        return self._call("list jobs", self.client.jobs.get_jobs)

    def versions(self, job_id: str) -> list[dict[str, Any]]:
        return self._call(f"read versions of {job_id}", self.client.job.get_versions, job_id)["Versions"]

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        return self._call(f"list allocations of {job_id}", self.client.job.get_allocations, job_id)

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        return self._call("read allocation", self.client.allocation.get_allocation, alloc_id)

    def latest_deployment(self, job_id: str, index: int = 0, wait_s: float = 0) -> tuple[Any, int]:
        """The job's latest deployment, as a blocking query when ``index`` is given."""
        params = {"index": index, "wait": f"{int(wait_s)}s"} if index else {}
        return self._get(f"job/{job_id}/deployment", params, timeout=wait_s + self.timeout)

    def deployment(self, dep_id: str) -> dict[str, Any]:
        return dict(self._get(f"deployment/{dep_id}")[0])

    def deployment_allocations(self, dep_id: str) -> list[dict[str, Any]]:
        return list(self._get(f"deployment/allocations/{dep_id}")[0])

    def variable(self, path: str) -> dict[str, Any] | None:
        """Nomad Variable ``path`` (``Items``, ``ModifyIndex``, ...), or None when it is absent."""
        try:
            return dict(self._raw("get", f"var/{path}", f"read Nomad Variable {path}"))
        except NomadError as exc:
            if exc.status != 404:
                raise
            return None

    def put_variable(self, path: str, items: dict[str, str], cas: int) -> None:
        """Write Nomad Variable ``path`` if it is still at ``cas`` (0: if it does not exist)."""
        self._raw("put", f"var/{path}", f"write Nomad Variable {path}", params={"cas": cas},
                  json={"Namespace": "default", "Path": path, "Items": items})

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        return self._call("read evaluation", self.client.evaluation.get_evaluation, eval_id)

    def node(self, node_id: str) -> dict[str, Any]:
        return self._call("read node", self.client.node.get_node, node_id)

    def nodes(self) -> list[dict[str, Any]]:
        return self._call("list nodes", self.client.nodes.get_nodes)

    # ---- writes --------------------------------------------------------------------------
    def parse(self, hcl: str, variables: str) -> dict[str, Any]:
        body = {"JobHCL": hcl, "Variables": variables, "Canonicalize": True}
        return self._raw("post", "jobs/parse", "parse a job file", json=body)

    def plan(self, job: dict[str, Any]) -> dict[str, Any]:
        return self._call(f"plan job {job['ID']}", self.client.job.plan_job, job["ID"],
                          {"Job": job}, diff=True)

    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        return self._call(f"register job {job['ID']}", self.client.job.register_job, job["ID"],
                          {"Job": job})

    def revert(self, job_id: str, version: int) -> dict[str, Any]:
        return self._call(f"revert job {job_id}", self.client.job.revert_job, job_id, version)

    def scale(self, job_id: str, group: str, count: int, message: str) -> dict[str, Any]:
        body = {"Count": count, "Target": {"Group": group}, "Message": message}
        return self._raw("post", f"job/{job_id}/scale", f"scale job {job_id}", json=body)

    def deregister(self, job_id: str, purge: bool) -> dict[str, Any]:
        return self._call(f"stop job {job_id}", self.client.job.deregister_job, job_id, purge=purge)

    def acl_bootstrap(self) -> dict[str, Any]:
        return self._raw("post", "acl/bootstrap", "bootstrap ACLs")

    def logs(self, alloc_id: str, task: str, stream: str, follow: bool, tail_bytes: int) -> Any:
        params = {"task": task, "type": stream, "follow": str(follow).lower(), "plain": "true",
                  "origin": "end", "offset": tail_bytes}
        return self._call("read logs", self.raw.request, f"client/fs/logs/{alloc_id}",
                          method="get", params=params, stream=True,
                          timeout=None if follow else self.timeout)


def _short(err: Any) -> str:
    text = str(err)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted: set NOMAD_CACERT"
    return text[:200]
