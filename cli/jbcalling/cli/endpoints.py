"""The URL of a service instance registered in Consul; for the ingress, the one participants open."""

from __future__ import annotations

from typing import Any

DEFAULT_PORTS = {"http": "80", "https": "443"}


def url(service: str, inst: dict[str, Any]) -> str:
    """``inst`` is one entry of Consul's /v1/health/service/<service>."""
    svc = inst["Service"]
    addr = svc.get("Address") or inst["Node"]["Address"]
    if service == "ingress":
        # The ingress registers its plain-HTTP port (its check); the meta names the public one.
        meta = svc.get("Meta") or {}
        scheme = str(meta.get("scheme", "http"))
        scheme = scheme if scheme in DEFAULT_PORTS else "http"
        port = str(meta.get("public_port") or svc["Port"])
        return f"{scheme}://{addr}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")
    scheme = "redis" if service == "redis" else "http"
    return f"{scheme}://{addr}:{svc['Port']}"


def public_urls(instances: list[dict[str, Any]]) -> list[str]:
    """The ingress instances whose checks all pass."""
    return [url("ingress", i) for i in instances
            if all(c.get("Status") == "passing" for c in i.get("Checks") or [])]


def prometheus_url(inst: dict[str, Any]) -> str:
    """Prometheus at its own address, with the route prefix its Consul meta ``path_prefix``
    names (the same prefix as behind the ingress); ends with a slash."""
    prefix = str((inst["Service"].get("Meta") or {}).get("path_prefix") or "/").strip("/")
    return url("prometheus", inst) + "/" + (prefix + "/" if prefix else "")


def prometheus_links(public: list[str], instances: list[dict[str, Any]], direct: bool) -> list[str]:
    """Where the operator opens Prometheus, when an instance passes its checks: through each
    public ingress URL at /prometheus/, and (``direct``, in dev) at its own address."""
    passing = [i for i in instances if all(c.get("Status") == "passing" for c in i.get("Checks") or [])]
    if not passing:
        return []
    return [u + "/prometheus/" for u in public] + ([prometheus_url(passing[0])] if direct else [])
