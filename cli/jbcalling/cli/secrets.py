"""Secrets in Nomad Variables, generated once by jbctl, never in job files.

Two places, each asked for by a job meta (comma-separated keys):

- ``meta.jb_secrets``: keys of the job's own ``nomad/jobs/<service>`` (e.g. signaling's JWT key);
- ``meta.jb_shared_secrets``: keys of ``nomad/jobs``, which every job's workload identity may read
  (Nomad 1.6), for secrets two jobs must agree on: ``redis_password`` (Redis and each client),
  ``gateway_token`` (the gateway and signaling).

Before registering a job, jbctl creates whichever keys are missing, with 48 random URL-safe
characters (safe inside a redis:// URL), and leaves every existing value alone. Secrets that must
match another system (the TURN secret that coturn also holds; the TLS certificate and key in
``nomad/jobs/ingress``) are written by Ansible, not generated here. Tasks read them only through
``template`` files in their ``secrets/`` directory.
"""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from jbcalling.cli.nomad_api import NomadApi

SHARED_PATH = "nomad/jobs"


def _keys(job: dict[str, Any], meta_key: str) -> list[str]:
    raw = (job.get("Meta") or {}).get(meta_key, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def wanted(job: dict[str, Any]) -> list[str]:
    """Keys of the job's own Variable, ``nomad/jobs/<service>``."""
    return _keys(job, "jb_secrets")


def wanted_shared(job: dict[str, Any]) -> list[str]:
    """Keys of the shared Variable, ``nomad/jobs``."""
    return _keys(job, "jb_shared_secrets")


def job_path(service: str) -> str:
    return f"{SHARED_PATH}/{service}"


def ensure(api: NomadApi, path: str, keys: list[str]) -> list[str]:
    """Create the missing ``keys`` of Nomad Variable ``path``; returns the keys created."""
    if not keys:
        return []
    current = api.variable(path)
    items = dict((current or {}).get("Items") or {})
    missing = [k for k in keys if not items.get(k)]
    if not missing:
        return []
    items.update({k: pysecrets.token_urlsafe(36) for k in missing})
    # check-and-set: two deploys at once cannot overwrite each other's new keys
    cas = (current or {}).get("ModifyIndex", 0)
    api.put_variable(path, items, cas)
    return missing


def ensure_for_job(api: NomadApi, service: str, job: dict[str, Any]) -> dict[str, list[str]]:
    """Create what ``job`` asks for in both places; returns path -> keys created (if any)."""
    created = {}
    for path, keys in ((job_path(service), wanted(job)), (SHARED_PATH, wanted_shared(job))):
        new = ensure(api, path, keys)
        if new:
            created[path] = new
    return created
