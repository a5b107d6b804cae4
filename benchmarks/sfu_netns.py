"""A network namespace for an SFU under benchmark, joined to this (root) namespace by a veth pair
on a private /30, that exists only while the benchmark runs.

Why: Janus 1.1.2 skips loopback interfaces when it gathers ICE candidates, so it cannot be
measured on 127.0.0.1; and an SFU alone in its namespace has its own /proc/net/snmp, whose Udp
OutDatagrams are exactly the datagrams that SFU sent. Both SFUs run the same way, for fairness.

Needs root (CAP_NET_ADMIN) and iproute2; refuses to start when the namespace name, either
interface name or any address of the /30 is already in use.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path
from types import TracebackType

from sfu_stats import parse_snmp


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


class Netns:
    """``with Netns("jb-sfubench", "10.213.0.0/30") as ns:`` host side gets the first address
    (``ns.host_ip``), the namespace the second (``ns.inner_ip``)."""

    def __init__(self, name: str, subnet: str, veth: str = "jbsfu") -> None:
        self.name = name
        self.net = ipaddress.ip_network(subnet)
        if self.net.version != 4 or self.net.prefixlen != 30 or not self.net.is_private:
            raise SystemExit(f"--subnet {subnet}: give a private IPv4 /30, e.g. 10.213.0.0/30")
        self.host_ip, self.inner_ip = (str(a) for a in self.net.hosts())
        self.host_if, self.inner_if = f"{veth}0", f"{veth}1"
        self.created = False

    def conflicts(self) -> list[str]:
        """What already uses this namespace's name, interfaces or addresses (empty: free)."""
        found = []
        if self.name in _ip("netns", "list").stdout.split():
            found.append(f"network namespace {self.name} exists (ip netns del {self.name})")
        for dev in (self.host_if, self.inner_if):
            if _ip("link", "show", dev, check=False).returncode == 0:
                found.append(f"interface {dev} exists (ip link del {dev})")
        for entry in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
            for a in entry.get("addr_info", []):
                net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
                if net.overlaps(self.net):
                    found.append(f"{entry['ifname']} has {a['local']}/{a['prefixlen']}, which "
                                 f"overlaps {self.net} (choose another --subnet)")
        return found

    def __enter__(self) -> Netns:
        if os.geteuid() != 0:
            raise SystemExit("run as root: the benchmark creates a network namespace and a veth pair")
        busy = self.conflicts()
        if busy:
            raise SystemExit("refusing to start: " + "; ".join(busy))
        self.created = True  # from here on, __exit__ removes whatever exists
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
            _ip("link", "set", self.inner_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            for args in (("addr", "add", f"{self.inner_ip}/30", "dev", self.inner_if),
                         ("link", "set", self.inner_if, "up"), ("link", "set", "lo", "up")):
                _ip("-n", self.name, *args)
        except subprocess.CalledProcessError as exc:
            self.__exit__(None, None, None)
            raise SystemExit(f"creating the namespace failed: {' '.join(exc.cmd)}: {exc.stderr}") from exc
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.created:
            return
        # Deleting the namespace deletes its veth end, and with it the host end.
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_if, check=False)
        self.created = False

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (iproute2 execs it: the pid is the program's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def snmp(self) -> dict[str, dict[str, int]]:
        """The namespace's /proc/net/snmp."""
        out = subprocess.run(self.command(["cat", "/proc/net/snmp"]), check=True,
                             capture_output=True, text=True, timeout=30).stdout
        return parse_snmp(out)


def root_snmp() -> dict[str, dict[str, int]]:
    """This process's (the receivers') namespace's /proc/net/snmp."""
    return parse_snmp(Path("/proc/net/snmp").read_text())
