"""Pure builders for the local dev cluster: its ports, folders, agent configs and argv.

Nothing here starts a process; ``devcluster.py`` runs what these functions describe. A port
offset moves every port, so that a test cluster can run beside a developer's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# The node roles (edge, ai, tts: docs/architecture.md); the one dev node carries them all, so
# every job places on it.
DEV_ROLES = "edge,ai,tts"
HOST_VOLUMES = ("models", "redis-data", "prometheus-data")


@dataclass(frozen=True)
class Ports:
    consul_http: int
    consul_dns: int
    consul_server: int
    consul_serf_lan: int
    consul_serf_wan: int
    consul_grpc: int
    consul_grpc_tls: int
    nomad_http: int
    nomad_rpc: int
    nomad_serf: int
    dynamic_min: int
    dynamic_max: int

    @classmethod
    def with_offset(cls, offset: int) -> Ports:
        # Nomad hands out task ports from the dynamic range: two clusters on one machine get
        # disjoint ranges, or they would give the same port to two tasks. Offset 0 has
        # 20000-25999; others one of six 1000-port windows of 26000-31999, by thousands of the
        # offset (the tests' clusters use different thousands: 9000, 10000, 11000, ...).
        if offset == 0:
            dyn = (20000, 25999)
        else:
            low = 26000 + (offset // 1000 % 6) * 1000
            dyn = (low, low + 999)
        return cls(8500 + offset, 8600 + offset, 8300 + offset, 8301 + offset, 8302 + offset,
                   8502 + offset, 8503 + offset, 4646 + offset, 4647 + offset, 4648 + offset, *dyn)

    def named(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if not k.startswith("dynamic")}


@dataclass(frozen=True)
class Layout:
    """Where one dev cluster keeps its files (all under ``root``, in the state dir)."""

    root: Path
    consul_data: Path = field(init=False)
    nomad_data: Path = field(init=False)
    logs: Path = field(init=False)
    volumes: Path = field(init=False)
    nomad_config: Path = field(init=False)
    pids: Path = field(init=False)
    token: Path = field(init=False)

    def __post_init__(self) -> None:
        for name, rel in (("consul_data", "consul"), ("nomad_data", "nomad"), ("logs", "logs"),
                          ("volumes", "volumes"), ("nomad_config", "nomad.hcl"),
                          ("pids", "pids.json"), ("token", "nomad-token")):
            object.__setattr__(self, name, self.root / rel)

    def volume(self, name: str) -> Path:
        return self.volumes / name


def layout_for(state_dir: Path, offset: int) -> Layout:
    return Layout(state_dir / ("cluster" if offset == 0 else f"cluster-{offset}"))


def consul_argv(binary: str, ports: Ports, layout: Layout) -> list[str]:
    return [
        binary, "agent", "-dev", "-node", "jb-dev",
        "-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
        "-http-port", str(ports.consul_http), "-dns-port", str(ports.consul_dns),
        "-server-port", str(ports.consul_server), "-serf-lan-port", str(ports.consul_serf_lan),
        "-serf-wan-port", str(ports.consul_serf_wan), "-grpc-port", str(ports.consul_grpc),
        "-grpc-tls-port", str(ports.consul_grpc_tls),
        # /v1/agent/metrics?format=prometheus answers only with a retention time (Prometheus
        # scrapes it: jobs/prometheus.nomad.hcl).
        "-hcl", 'telemetry {\n prometheus_retention_time = "60s"\n disable_hostname = true\n}',
        "-log-level", "warn",
    ]


def nomad_config(ports: Ports, layout: Layout, acl: bool) -> str:
    """The Nomad agent's HCL config (added to ``-dev``): loopback, Consul, volumes, node meta."""
    volumes = "\n".join(
        f'  host_volume "{name}" {{\n    path      = {json.dumps(str(layout.volume(name)))}\n'
        f"    read_only = false\n  }}"
        for name in HOST_VOLUMES
    )
    return f"""# Written by `jbctl cluster up`; edits are overwritten.
name      = "jb-dev"
data_dir  = {json.dumps(str(layout.nomad_data))}
bind_addr = "127.0.0.1"
log_level = "WARN"

ports {{
  http = {ports.nomad_http}
  rpc  = {ports.nomad_rpc}
  serf = {ports.nomad_serf}
}}

advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}

consul {{
  address = "127.0.0.1:{ports.consul_http}"
}}

acl {{
  enabled = {str(acl).lower()}
}}

client {{
  # A VM may fingerprint 0 MHz; state the compute so that jobs with CPU asks place.
  cpu_total_compute = 8000
  network_interface = "lo"
  min_dynamic_port  = {ports.dynamic_min}
  max_dynamic_port  = {ports.dynamic_max}
  # Unique per cluster, or two clusters on one machine share cgroup paths.
  cgroup_parent     = "jbcalling-{ports.nomad_http}"
  meta {{
    jb_role = "{DEV_ROLES}"
  }}
{volumes}
}}

# /v1/metrics?format=prometheus, with the allocations' CPU and memory (jobs/prometheus.nomad.hcl).
telemetry {{
  collection_interval        = "5s"
  prometheus_metrics         = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
}}

plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
"""


def nomad_argv(binary: str, layout: Layout) -> list[str]:
    return [binary, "agent", "-dev", "-config", str(layout.nomad_config)]
