"""Per-service secrets in Nomad Variables (``nomad/jobs/<service>``), never in job files.

A job lists in ``meta.jb_secrets`` the keys it needs generated (e.g. the JWT key of signaling);
before registering it, jbctl creates whichever of them are missing, with 48 random URL-safe
characters, and leaves every existing value alone. Secrets that must match another system
(the TURN secret that coturn also holds) are written by Ansible, not generated here.
"""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from jbcalling.cli.nomad_api import NomadApi, NomadError


def wanted(job: dict[str, Any]) -> list[str]:
    raw = (job.get("Meta") or {}).get("jb_secrets", "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def ensure(api: NomadApi, service: str, keys: list[str]) -> list[str]:
    """Create the missing ``keys`` of ``nomad/jobs/<service>``; returns the keys created."""
    if not keys:
        return []
    path = f"nomad/jobs/{service}"
    try:
        current = api._raw("get", f"var/{path}", f"read Nomad Variable {path}")
    except NomadError as exc:
        if exc.status != 404:
            raise
        current = None
    items = dict((current or {}).get("Items") or {})
    missing = [k for k in keys if not items.get(k)]
    if not missing:
        return []
    items.update({k: pysecrets.token_urlsafe(36) for k in missing})
    cas = (current or {}).get("ModifyIndex", 0)
    api._raw("put", f"var/{path}", f"write Nomad Variable {path}", params={"cas": cas},
             json={"Namespace": "default", "Path": path, "Items": items})
    return missing
