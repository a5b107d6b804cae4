"""The Nomad HTTP API endpoints jbctl uses, over jbctl's one HTTP stack (:mod:`http_api`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jbcalling.cli.http_api import Agent, AgentApi, AgentError
from jbcalling.cli.settings import CliSettings

NomadError = AgentError  # Nomad answered with an error status (``status``, ``body``)


class NomadApi(AgentApi):
    def __init__(self, settings: CliSettings) -> None:
        agent = Agent(
            product="Nomad", addr=settings.nomad_addr, token_header="X-Nomad-Token",
            token=settings.nomad_token, cacert=settings.nomad_cacert,
            client_cert=settings.nomad_client_cert, client_key=settings.nomad_client_key,
            unreachable_hint="start the dev cluster with `jbctl cluster up`, or set NOMAD_ADDR "
                             "(and NOMAD_CACERT for https)",
            token_hint="set NOMAD_TOKEN to a valid ACL token (see docs/runbook.md#tokens)",
        )
        region = {"region": settings.nomad_region} if settings.nomad_region else {}
        super().__init__(agent, settings.http_timeout_s, params=region)

    def _optional(self, path: str, what: str) -> Any:
        """GET ``path``, or None when Nomad answers 404."""
        try:
            return self.json("GET", path, what)
        except AgentError as exc:
            if exc.status == 404:
                return None
            raise

    # ---- reads ---------------------------------------------------------------------------
    def leader(self) -> str:
        return str(self.json("GET", "status/leader", "read the leader"))

    def check_token(self) -> None:
        """Fail with ClusterUnreachable when Nomad does not answer or refuses the token."""
        self.json("GET", "jobs", "list jobs")

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self._optional(f"job/{job_id}", f"read job {job_id}")

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "jobs", "list jobs"))

    def versions(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.json("GET", f"job/{job_id}/versions", f"read versions of {job_id}")["Versions"])

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.json("GET", f"job/{job_id}/allocations", f"list allocations of {job_id}"))

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"allocation/{alloc_id}", "read allocation"))

    def latest_deployment(self, job_id: str, index: int = 0, wait_s: float = 0) -> tuple[Any, int]:
        """The job's latest deployment and Nomad's index, as a blocking query when ``index`` is given."""
        params = {"index": index, "wait": f"{int(wait_s)}s"} if index else {}
        resp = self.request("GET", f"job/{job_id}/deployment", f"read the deployment of {job_id}",
                            params=params, timeout=wait_s + self.timeout)
        return resp.json(), int(resp.headers.get("X-Nomad-Index", "0") or 0)

    def deployment(self, dep_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"deployment/{dep_id}", "read deployment"))

    def deployment_allocations(self, dep_id: str) -> list[dict[str, Any]]:
        return list(self.json("GET", f"deployment/allocations/{dep_id}",
                              "list the deployment's allocations"))

    def variable(self, path: str) -> dict[str, Any] | None:
        """Nomad Variable ``path`` (``Items``, ``ModifyIndex``, ...), or None when it is absent."""
        found = self._optional(f"var/{path}", f"read Nomad Variable {path}")
        return dict(found) if found is not None else None

    def evaluation(self, eval_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"evaluation/{eval_id}", "read evaluation"))

    def node(self, node_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"node/{node_id}", "read node"))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "nodes", "list nodes"))

    def logs(self, alloc_id: str, task: str, stream: str, follow: bool,
             tail_bytes: int) -> Iterator[bytes]:
        """The task's log from ``tail_bytes`` before its end; with ``follow``, until interrupted."""
        params = {"task": task, "type": stream, "follow": str(follow).lower(), "plain": "true",
                  "origin": "end", "offset": tail_bytes}
        with self.stream("GET", f"client/fs/logs/{alloc_id}", "read logs", params=params,
                         timeout=None if follow else self.timeout) as resp:
            yield from resp.iter_bytes()

    # ---- writes --------------------------------------------------------------------------
    def put_variable(self, path: str, items: dict[str, str], cas: int) -> None:
        """Write Nomad Variable ``path`` if it is still at ``cas`` (0: if it does not exist)."""
        self.json("PUT", f"var/{path}", f"write Nomad Variable {path}", params={"cas": cas},
                  json={"Namespace": "default", "Path": path, "Items": items})

    def parse(self, hcl: str, variables: str) -> dict[str, Any]:
        """The job as written (not canonicalized: what the file leaves unset is null; Nomad
        fills its defaults when the job is planned or registered)."""
        body = {"JobHCL": hcl, "Variables": variables, "Canonicalize": False}
        return dict(self.json("POST", "jobs/parse", "parse a job file", json=body))

    def plan(self, job: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", f"job/{job['ID']}/plan", f"plan job {job['ID']}",
                              json={"Job": job, "Diff": True}))

    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", f"job/{job['ID']}", f"register job {job['ID']}",
                              json={"Job": job}))

    def revert(self, job_id: str, version: int) -> dict[str, Any]:
        return dict(self.json("POST", f"job/{job_id}/revert", f"revert job {job_id}",
                              json={"JobID": job_id, "JobVersion": version}))

    def scale(self, job_id: str, group: str, count: int, message: str) -> dict[str, Any]:
        body = {"Count": count, "Target": {"Group": group}, "Message": message}
        return dict(self.json("POST", f"job/{job_id}/scale", f"scale job {job_id}", json=body))

    def deregister(self, job_id: str, purge: bool) -> dict[str, Any]:
        return dict(self.json("DELETE", f"job/{job_id}", f"stop job {job_id}",
                              params={"purge": str(purge).lower()}))

    def acl_bootstrap(self) -> dict[str, Any]:
        return dict(self.json("POST", "acl/bootstrap", "bootstrap ACLs"))
