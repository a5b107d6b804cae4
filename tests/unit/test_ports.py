"""The cluster's one port list (ansible/group_vars/all/ports.yml), its firewall and its doc.

The list is rendered as Ansible would (its `{{ var }}` from group_vars/all/main.yml), then
checked against: the port table of docs/ansible.md, the rules jb_base's nftables template makes
from it for each node role, and what the design contract allows to be public.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GROUP_VARS = ROOT / "ansible" / "group_vars" / "all"
TEMPLATE = ROOT / "ansible" / "roles" / "jb_base" / "templates" / "nftables.conf.j2"
DOC = ROOT / "docs" / "ansible.md"


def _group_vars() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(GROUP_VARS.glob("*.yml")):
        out.update(yaml.safe_load(path.read_text()))
    return out


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return jinja2.Template(value, undefined=jinja2.StrictUndefined).render(context)
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    return value


def ports() -> list[dict[str, Any]]:
    gv = _group_vars()
    return [_render(p, gv) for p in gv["jb_ports"]]


def _span(ports: str) -> tuple[int, int]:
    low, _, high = ports.partition("-")
    return int(low), int(high or low)


def _opened(roles: list[str]) -> set[tuple[str, str, str, str]]:
    """(name, proto, ports, from) that the list opens on a node of these roles."""
    return {(p["name"], proto, p["ports"], src) for p in ports()
            if "all" in p["roles"] or set(p["roles"]) & set(roles)
            for proto in p["proto"] for src in p["from"]}


def _doc_rows() -> list[list[str]]:
    text = DOC.read_text()
    section = text.split("## Ports", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|")]
    assert rows and rows[0] == ["name", "what", "port", "proto", "from", "roles"], rows[:1]
    return rows[2:]


def _nft(roles: str, admin: list[str]) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    # the two Ansible additions the template uses
    env.filters["intersect"] = lambda a, b: [x for x in a if x in b]
    env.tests["search"] = lambda value, pattern: re.search(pattern, value) is not None
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="managed", inventory_hostname="n1", jb_base_roles=roles.split(","),
        jb_base_ports=ports(), jb_base_admin_cidrs=admin,
        jb_base_cluster_addresses=["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        jb_base_nftables_include="/nonexistent/nftables.d/*.nft")


RULE = re.compile(r'^\s+(?:ip saddr @(cluster|admin)_v4 )?(tcp|udp) dport (\S+) accept comment "([^"]+)"$',
                  re.M)


def test_the_doc_table_is_the_list() -> None:
    doc = {(r[0], r[2], r[3], r[4], r[5]) for r in _doc_rows()}
    listed = {(p["name"], p["ports"], ", ".join(p["proto"]), ", ".join(p["from"]), ", ".join(p["roles"]))
              for p in ports()}
    assert doc == listed, f"only in docs/ansible.md: {doc - listed}; only in ports.yml: {listed - doc}"


def test_names_are_unique_and_fields_well_formed() -> None:
    names = [p["name"] for p in ports()]
    assert len(names) == len(set(names))
    for p in ports():
        low, high = _span(p["ports"])
        assert 0 < low <= high <= 65535, p
        assert set(p["proto"]) <= {"tcp", "udp"} and p["proto"], p
        assert set(p["from"]) <= {"public", "cluster", "admin"} and p["from"], p
        assert set(p["roles"]) <= {"all", "edge", "ai", "tts"} and p["roles"], p


def test_only_the_edge_serves_the_public_and_only_what_design_allows() -> None:
    gv = _group_vars()
    public = {(proto, ports) for (_n, proto, ports, src) in _opened(["edge"]) if src == "public"}
    assert public == {
        ("tcp", "80"), ("tcp", "443"), ("tcp", "3478"), ("udp", "3478"), ("tcp", "5349"),
        ("udp", f"{gv['jb_gateway_udp_port_min']}-{gv['jb_gateway_udp_port_max']}"),
        ("udp", f"{gv['jb_turn_relay_port_min']}-{gv['jb_turn_relay_port_max']}"),
    }
    for role in ("ai", "tts"):
        assert not [o for o in _opened([role]) if o[3] == "public"], role
    # redis, the services' dev ports, Consul's plain HTTP and DNS: never reachable from outside
    for port in (6379, 8080, 8081, 8082, 8083, 8090, 8500, 8502, 8600):
        for (_n, _proto, ports, _src) in _opened(["edge", "ai", "tts"]):
            low, high = _span(ports)
            assert not low <= port <= high, (port, ports)


def test_the_ranges_do_not_overlap() -> None:
    gv = _group_vars()
    ranges = {
        "gateway media": (gv["jb_gateway_udp_port_min"], gv["jb_gateway_udp_port_max"]),
        "nomad dynamic": (gv["jb_dynamic_port_min"], gv["jb_dynamic_port_max"]),
        "turn relay": (gv["jb_turn_relay_port_min"], gv["jb_turn_relay_port_max"]),
    }
    spans = sorted(ranges.items(), key=lambda kv: kv[1])
    for (a, (_, a_high)), (b, (b_low, _)) in itertools.pairwise(spans):
        assert a_high < b_low, f"{a} overlaps {b}"
    # Linux's own default ephemeral range (32768-60999) would overlap TURN's relay range: the
    # edge node's range is moved to the gateway's (jb_base_netns_sysctls)
    assert ranges["gateway media"][0] > 1024


@pytest.mark.parametrize("roles", ["edge", "ai", "tts", "edge,tts"])
def test_the_firewall_opens_exactly_the_list(roles: str) -> None:
    admin = ["192.0.2.0/24"]
    rules = {(name, proto, ports, src or "public")
             for src, proto, ports, name in RULE.findall(_nft(roles, admin))}
    assert rules == _opened(roles.split(","))
    assert "policy drop" in _nft(roles, admin)


def test_without_admin_networks_only_ssh_stays_open_to_all() -> None:
    text = _nft("ai", [])
    rules = {(name, src or "public") for src, _proto, _ports, name in RULE.findall(text)}
    assert ("ssh", "public") in rules
    assert not [r for r in rules if r[1] == "admin"]
    assert "admin_v4" not in text
    # the APIs stay open to the cluster
    assert {("consul-https", "cluster"), ("nomad-http", "cluster")} <= rules


def test_the_gateway_job_records_the_media_range_ansible_opens() -> None:
    gv = _group_vars()
    opened = f"{gv['jb_gateway_udp_port_min']}-{gv['jb_gateway_udp_port_max']}"
    prod = (ROOT / "jobs" / "vars" / "prod.hcl").read_text()
    found = re.search(r'^gateway_udp_ports\s*=\s*"([^"]+)"', prod, re.M)
    assert found and found[1] == opened, (found and found[1], opened)
