"""Turn jobs/<service>.nomad.hcl + jobs/variables.hcl + jobs/vars/<env>.hcl into Nomad job JSON,
before anything runs.

Rendering goes through Nomad's own parser (``/v1/jobs/parse`` with HCL2 variables), so what is
checked is exactly what Nomad will run. Every job is rendered, and its ownership checked, before
any is submitted: a bad file submits nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jbcalling.cli.errors import OwnershipError, RenderError, UsageError
from jbcalling.cli.nomad_api import NomadApi, NomadError
from jbcalling.cli.settings import CliSettings

# Dependencies first: signaling and the speech services need Redis; the ingress routes to
# signaling; the gateway needs them all.
DEPLOY_ORDER = ["redis", "signaling", "ingress", "stt", "mt", "tts", "gateway", "alertmanager",
                "prometheus"]
OWNER_KEY, OWNER_VALUE = "jb_managed_by", "jbctl"
SHARED_VARIABLES = "variables.hcl"
POLICIES = "policies.hcl"
# What jobs/policies.hcl supplies: (where in the job, where in a group).
_JOB_POLICIES = ("Datacenters", "Type", "Meta", "Update")
_GROUP_POLICIES = ("RestartPolicy", "ReschedulePolicy")


@dataclass
class Rendered:
    service: str
    path: Path
    job: dict[str, Any]

    @property
    def release(self) -> str:
        return str((self.job.get("Meta") or {}).get("jb_release", ""))


def known_services(jobs_dir: Path) -> list[str]:
    found = {p.name.removesuffix(".nomad.hcl") for p in jobs_dir.glob("*.nomad.hcl")}
    ordered = [s for s in DEPLOY_ORDER if s in found]
    return ordered + sorted(found - set(ordered))


def resolve_services(names: list[str], jobs_dir: Path) -> list[str]:
    """The services to act on, in deploy order; all of them when ``names`` is empty."""
    known = known_services(jobs_dir)
    if not known:
        raise UsageError(f"no job files (*.nomad.hcl) in {jobs_dir}",
                         hint="run jbctl from the repository, or set JB_JOBS_DIR")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown service {', '.join(map(repr, unknown))}",
                         hint=f"known services: {', '.join(known)}")
    return [s for s in known if not names or s in names]


def parse_var_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"--var {pair!r} is not KEY=VALUE", hint="e.g. --var signaling_count=2")
        out[key] = value
    return out


def _assigned(var_text: str) -> dict[str, tuple[int, int]]:
    """Top-level assignments of a var file: name -> (first line, last line) of its value."""
    lines = var_text.splitlines()
    found: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(lines):
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", lines[i])
        if m:
            depth, j = 0, i
            while True:
                depth += lines[j].count("[") + lines[j].count("{")
                depth -= lines[j].count("]") + lines[j].count("}")
                if depth <= 0 or j == len(lines) - 1:
                    break
                j += 1
            found[m.group(1)] = (i, j)
            i = j
        i += 1
    return found


def layer_var_files(base: str, files: list[str]) -> str:
    """``base`` (jobs/vars/<env>.hcl) with each of ``files`` (``--var-file``, HCL assignments of
    any type) laid over it in order: a later file's assignment replaces an earlier one whole."""
    text = base
    for extra in files:
        lines = text.splitlines()
        for key, (first, last) in _assigned(text).items():
            if key in _assigned(extra):
                for k in range(first, last + 1):
                    lines[k] = ""
        text = "\n".join(lines) + "\n" + extra.rstrip("\n") + "\n"
    return text


def read_var_files(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        try:
            out.append(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read --var-file {path}: {exc.strerror}",
                             hint="name an HCL file of `name = value` lines") from exc
    return out


def build_variables(var_text: str, injected: dict[str, str], overrides: dict[str, str]) -> str:
    """The Variables text for Nomad: the var file, ``--var`` overrides replacing its lines, and
    jbctl's injected values for whatever neither sets."""
    lines = var_text.splitlines()
    assigned = _assigned(var_text)
    for key in overrides:
        if key in assigned:
            first, last = assigned[key]
            for k in range(first, last + 1):
                lines[k] = ""
    extra = {**{k: v for k, v in injected.items() if k not in assigned}, **overrides}
    lines.append("# set by jbctl")
    lines += [f"{k} = {_hcl_value(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _hcl_value(value: str) -> str:
    # Numbers and booleans stay literal so that typed variables accept them; the rest quoted.
    if re.fullmatch(r"-?\d+(\.\d+)?|true|false", value):
        return value
    return json.dumps(value)


def job_source(jobs_dir: Path, service: str, file_name: str = "") -> str:
    """What Nomad parses for ``service``: its job file (or ``file_name``), then the variables
    every job shares (jobs/variables.hcl). Appended, not prepended, so that the line numbers of a
    parse error in the job file stay true."""
    own = (jobs_dir / (file_name or f"{service}.nomad.hcl")).read_text()
    return own.rstrip("\n") + "\n\n" + (jobs_dir / SHARED_VARIABLES).read_text()


def apply_policies(job: dict[str, Any], policies: dict[str, Any]) -> dict[str, Any]:
    """Fill what ``job`` (as parsed, not canonicalized: unset fields are null) leaves unset in
    its datacenters, type, meta and update, restart and reschedule policies from
    jobs/policies.hcl's, field by field: so every job carries jbctl's ownership meta
    (jb_managed_by) and the release."""
    def fill(own: Any, shared: Any) -> Any:
        if own is None or shared is None:
            return own if shared is None else shared
        if not isinstance(own, dict):
            return own
        return {k: shared.get(k) if own.get(k) is None else own[k] for k in own.keys() | shared.keys()}

    out = dict(job)
    for key in _JOB_POLICIES:
        out[key] = fill(job.get(key), policies.get(key))
    (shared_group,) = policies["TaskGroups"]
    out["TaskGroups"] = [{**g, **{k: fill(g.get(k), shared_group.get(k)) for k in _GROUP_POLICIES}}
                         for g in job.get("TaskGroups") or []]
    return out


def declared_variables(hcl: str) -> set[str]:
    return set(re.findall(r'^variable\s+"([^"]+)"', hcl, re.M))


def check_overrides(overrides: dict[str, str], services: list[str], jobs_dir: Path) -> None:
    """Every ``--var`` must be declared by at least one of the services acted on."""
    declared: set[str] = set()
    for s in services:
        try:
            declared |= declared_variables(job_source(jobs_dir, s))
        except OSError:
            continue
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise UsageError(f"no job among {', '.join(services)} declares {', '.join(unknown)}",
                         hint=f"declared variables: {', '.join(sorted(declared))}")


def render(api: NomadApi, settings: CliSettings, service: str, injected: dict[str, str],
           overrides: dict[str, str], var_files: list[str] | None = None) -> Rendered:
    path = settings.jobs_dir / f"{service}.nomad.hcl"
    var_path = settings.jobs_dir / "vars" / f"{settings.env}.hcl"
    try:
        hcl = job_source(settings.jobs_dir, service)
        shared_hcl = job_source(settings.jobs_dir, service, POLICIES)
        var_text = layer_var_files(var_path.read_text(), var_files or [])
    except OSError as exc:
        raise RenderError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    job = _parse(api, hcl, path, var_path, var_text, injected, overrides)
    policies = _parse(api, shared_hcl, settings.jobs_dir / POLICIES, var_path, var_text,
                      injected, overrides)
    job = apply_policies(job, policies)
    if job.get("ID") != service:
        raise RenderError(f"{path} defines job {job.get('ID')!r}, expected {service!r}",
                          hint="a job file is named after its job")
    return Rendered(service, path, job)


def _parse(api: NomadApi, hcl: str, path: Path, var_path: Path, var_text: str,
           injected: dict[str, str], overrides: dict[str, str]) -> dict[str, Any]:
    declared = declared_variables(hcl)
    variables = build_variables(var_text, {k: v for k, v in injected.items() if k in declared},
                                {k: v for k, v in overrides.items() if k in declared})
    try:
        return api.parse(hcl, variables)
    except NomadError as exc:
        message = exc.body.replace("input.hcl", str(path)).removeprefix("Failed to parse job: ")
        raise RenderError(f"{path} does not render with {var_path.name}: {message}",
                          hint="fix the file; nothing was submitted") from exc


def check_owner(existing: dict[str, Any] | None, service: str) -> None:
    """Refuse to touch a job that exists in Nomad and that jbctl did not create."""
    if existing is None:
        return
    if (existing.get("Meta") or {}).get(OWNER_KEY) != OWNER_VALUE:
        raise OwnershipError(
            f"job {service!r} exists in Nomad but was not created by jbctl "
            f"(no meta {OWNER_KEY}={OWNER_VALUE})",
            hint=f"stop or rename that job yourself (`nomad job stop {service}`) and deploy again")


def injected_variables(settings: CliSettings, dev_volume_root: Path | None) -> dict[str, str]:
    values = {"release": settings.release, "app_root": settings.resolved_app_root()}
    if dev_volume_root is not None:
        # The dev cluster: its own volumes, and its Consul (at the port offset) for services
        # that discover others; in production each node's local agent is the default.
        values["host_volume_root"] = str(dev_volume_root)
        values["consul_http_addr"] = settings.consul_http_addr
    return values
