"""Follow what Nomad does after a job is registered, scaled or reverted, to its very end.

evaluation -> placement -> deployment (blocking queries) -> [auto-revert -> its deployment]
-> every running instance passing in Consul. The caller gets an :class:`Outcome`; a failure
comes with the failing allocations' last events, log lines and check output.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from jbcalling.cli.context import Ctx
from jbcalling.cli.errors import DeploymentFailed

TERMINAL = {"successful", "failed", "cancelled"}


@dataclass
class Outcome:
    service: str
    status: str  # healthy | failed | reverted | unhealthy
    version: int
    description: str = ""
    reverted_to: int | None = None
    details: list[str] = field(default_factory=list)

    def raise_if_failed(self) -> None:
        if self.status != "healthy":
            hint = (f"the previous version ({self.reverted_to}) is running again; fix the cause and "
                    "deploy again" if self.reverted_to is not None else
                    f"inspect with `jbctl status` and `jbctl logs {self.service} --stderr`")
            raise DeploymentFailed(f"{self.service}: {self.status}: {self.description}",
                                   hint=hint, details=self.details)


class Monitor:
    def __init__(self, ctx: Ctx, service: str, deadline: float) -> None:
        self.ctx = ctx
        self.service = service
        self.deadline = deadline
        self.checks_seen: dict[str, str] = {}  # last output of every critical check, by check id

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeploymentFailed(f"{self.service}: gave up waiting after JB_DEPLOY_TIMEOUT_S",
                                   hint="the deployment may still finish: `jbctl status`")
        return left

    # ---- evaluation ----------------------------------------------------------------------
    def wait_evaluation(self, eval_id: str) -> None:
        if not eval_id:
            return
        while True:
            ev = self.ctx.nomad.evaluation(eval_id)
            if ev["Status"] in ("complete", "failed", "canceled", "blocked"):
                break
            self._left()
            time.sleep(0.2)
        failed = ev.get("FailedTGAllocs") or {}
        if failed or ev["Status"] == "failed":
            reasons = []
            for group, metric in failed.items():
                why = {**(metric.get("ConstraintFiltered") or {}),
                       **(metric.get("DimensionExhausted") or {})}
                text = "; ".join(f"{k} ({v} nodes)" for k, v in why.items()) or "no eligible node"
                reasons.append(f"group {group}: {text}")
            raise DeploymentFailed(
                f"{self.service}: Nomad cannot place it: {', '.join(reasons) or ev['Status']}",
                hint="check node meta jb_role and free resources: `jbctl status`, the Nomad UI")

    # ---- deployment ----------------------------------------------------------------------
    def follow(self, version: int, what: str = "deployment") -> Outcome:
        dep = self._deployment_for(version)
        if dep is None:  # nothing to roll out (e.g. only a change Nomad applies in place)
            return self.wait_consul(version)
        index, last = 0, ""
        while dep["Status"] not in TERMINAL:
            line = _progress(dep)
            if line != last:
                self.ctx.out.event("progress", service=self.service, version=version,
                                   deployment=dep["ID"][:8], status=dep["Status"],
                                   message=f"{self.service} v{version} {what}: {line}")
                last = line
            self._snapshot_checks()
            dep, index = self._next_deployment(dep, index)
        self.ctx.out.event("deployment", service=self.service, version=version,
                           status=dep["Status"], description=dep.get("StatusDescription", ""),
                           message=f"{self.service} v{version} {what}: {dep['Status']} "
                                   f"({dep.get('StatusDescription', '')})")
        if dep["Status"] == "successful":
            return self.wait_consul(version)
        details = self._diagnose(dep)
        m = re.search(r"rolling back to job version (\d+)", dep.get("StatusDescription", ""))
        if m:
            target = int(m.group(1))
            revert = self._follow_revert(version)
            return Outcome(self.service, "reverted", version, dep.get("StatusDescription", ""),
                           reverted_to=target,
                           details=details + [f"revert: {revert.status} {revert.description}"])
        return Outcome(self.service, "failed", version, dep.get("StatusDescription", ""),
                       details=details)

    def _deployment_for(self, version: int) -> dict[str, Any] | None:
        settle = time.monotonic() + 10
        index = 0
        while True:
            dep, index = self.ctx.nomad.latest_deployment(self.service, index=index, wait_s=2)
            if dep and dep.get("JobVersion", -1) >= version:
                return dep
            if time.monotonic() > settle:
                return None
            self._left()

    def _next_deployment(self, dep: dict[str, Any], index: int) -> tuple[dict[str, Any], int]:
        wait = max(1.0, min(3.0, self._left()))
        latest, index = self.ctx.nomad.latest_deployment(self.service, index=index or 1,
                                                         wait_s=wait)
        if latest and latest["ID"] == dep["ID"]:
            return latest, index
        # A newer deployment replaced ours: read ours directly.
        return self.ctx.nomad.deployment(dep["ID"]), index

    def _follow_revert(self, failed_version: int) -> Outcome:
        self.ctx.out.event("revert", service=self.service,
                           message=f"{self.service}: Nomad is reverting; following the revert")
        dep = self._deployment_for(failed_version + 1)
        if dep is None:
            return self.wait_consul(failed_version + 1)
        return self.follow(dep["JobVersion"], what="revert")

    # ---- consul ------------------------------------------------------------------------
    def wait_consul(self, version: int, expect: int | None = None) -> Outcome:
        """Wait until every running allocation of the job passes all its checks in Consul."""
        last = ""
        while True:
            allocs = [a for a in self.ctx.nomad.allocations(self.service)
                      if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]
            instances = self.ctx.consul.service_health(self.service)
            passing = {alloc_of(i) for i in instances
                       if all(c["Status"] == "passing" for c in i["Checks"])}
            want = {a["ID"] for a in allocs}
            ok = bool(want) and want <= passing and (expect is None or len(want) == expect)
            line = f"{len(want & passing)}/{expect if expect is not None else len(want)} passing in Consul"
            if line != last:
                self.ctx.out.event("consul", service=self.service, passing=len(want & passing),
                                   running=len(want), message=f"{self.service}: {line}")
                last = line
            if ok:
                return Outcome(self.service, "healthy", version, line)
            if time.monotonic() > self.deadline:
                self._snapshot_checks()
                return Outcome(self.service, "unhealthy", version, line,
                               details=[f"check: {o}" for o in self.checks_seen.values()])
            time.sleep(0.5)

    def _snapshot_checks(self) -> None:
        for inst in self.ctx.consul.service_health(self.service):
            for chk in inst["Checks"]:
                output = (chk.get("Output") or "").strip()
                # Consul shows a new check as critical with no output until it first runs:
                # keep the last output that says something.
                if chk["Status"] == "passing" or not chk.get("ServiceName"):
                    continue
                if not output and chk.get("Type") == "http":
                    output = _probe_ready(inst["Service"])
                if output:
                    self.checks_seen[chk["CheckID"]] = f"{chk['Name']} {chk['Status']}: {output[:300]}"

    # ---- diagnosis -------------------------------------------------------------------------
    def _diagnose(self, dep: dict[str, Any]) -> list[str]:
        lines = [f"check: {o}" for o in self.checks_seen.values()]
        allocs = self.ctx.nomad.deployment_allocations(dep["ID"])
        for a in allocs:
            if (a.get("DeploymentStatus") or {}).get("Healthy") is not False:
                continue
            lines.append(f"allocation {a['ID'][:8]} on {a.get('NodeName', '?')} was unhealthy:")
            full = self.ctx.nomad.allocation(a["ID"])
            for task, state in (full.get("TaskStates") or {}).items():
                for ev in (state.get("Events") or [])[-4:]:
                    lines.append(f"  {task} event: {ev.get('Type')}: {ev.get('DisplayMessage', '')}")
                lines += [f"  {task} stderr: {ln}" for ln in self.log_tail(a["ID"], task)]
        return lines

    def log_tail(self, alloc_id: str, task: str, stream: str = "stderr", n: int = 5) -> list[str]:
        try:
            text = b"".join(self.ctx.nomad.logs(alloc_id, task, stream, follow=False,
                                                tail_bytes=4096)).decode(errors="replace")
        except Exception:  # the allocation may already be garbage-collected
            return []
        return [ln for ln in text.splitlines() if ln.strip()][-n:]


def _probe_ready(service: dict[str, Any]) -> str:
    """Ask an instance's /ready directly (best effort: the operator may not reach the node)."""
    url = f"http://{service.get('Address')}:{service.get('Port')}/ready"
    try:
        resp = httpx.get(url, timeout=1.0)
    except httpx.HTTPError as exc:
        return f"GET {url}: {exc.__class__.__name__}"
    return f"GET {url}: {resp.status_code} {resp.text.strip()[:250]}"


def alloc_of(instance: dict[str, Any]) -> str:
    """The allocation id in a Nomad-registered Consul service id (_nomad-task-<alloc>-...)."""
    sid = instance["Service"]["ID"]
    m = re.match(r"_nomad-task-([0-9a-f-]{36})-", sid)
    return m.group(1) if m else sid


def _progress(dep: dict[str, Any]) -> str:
    parts = []
    for name, tg in (dep.get("TaskGroups") or {}).items():
        canary = f", {len(tg.get('PlacedCanaries') or [])} canary" if tg.get("DesiredCanaries") else ""
        parts.append(f"{name} {tg.get('HealthyAllocs', 0)}/{tg.get('DesiredTotal', 0)} healthy, "
                     f"{tg.get('PlacedAllocs', 0)} placed, {tg.get('UnhealthyAllocs', 0)} unhealthy"
                     f"{canary}")
    return "; ".join(parts) or dep.get("StatusDescription", "")
