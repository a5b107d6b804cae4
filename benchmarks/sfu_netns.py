"""Two network namespaces for an SFU under benchmark: one for the SFU, one for its clients,
joined by a veth pair on a private /30, that exist only while the benchmark runs.

Why: Janus 1.1.2 skips loopback interfaces when it gathers ICE candidates, so it cannot be
measured on 127.0.0.1; an SFU alone in its namespace has its own /proc/net/snmp, whose Udp
OutDatagrams are exactly the datagrams it sent; and clients alone in theirs count in Udp
RcvbufErrors only the datagrams dropped at their own sockets, not those of whatever else runs on
the machine. Both SFUs run the same way, for fairness.

The benchmark process enters the clients' namespace (:meth:`Netns.enter_clients`; its worker
processes inherit it) and starts the SFU with ``ip netns exec``. Needs root (CAP_SYS_ADMIN) and
iproute2; refuses to start when a namespace name or an address of the /30 is already in use.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

from sfu_stats import parse_snmp

CLONE_NEWNET = 0x40000000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


class Netns:
    """``with Netns("jb-sfubench", "10.213.0.0/30") as ns:`` namespaces ``jb-sfubench`` (the SFU,
    ``ns.inner_ip``, the /30's second address) and ``jb-sfubench-c`` (the clients,
    ``ns.host_ip``, the first)."""

    def __init__(self, name: str, subnet: str, veth: str = "jbsfu") -> None:
        self.name, self.clients = name, f"{name}-c"
        self.net = ipaddress.ip_network(subnet)
        if self.net.version != 4 or self.net.prefixlen != 30 or not self.net.is_private:
            raise SystemExit(f"--subnet {subnet}: give a private IPv4 /30, e.g. 10.213.0.0/30")
        self.host_ip, self.inner_ip = (str(a) for a in self.net.hosts())
        self.host_if, self.inner_if = f"{veth}0", f"{veth}1"
        self.created = False

    def conflicts(self) -> list[str]:
        """What already uses these namespaces' names or addresses (empty: free). The addresses
        live in the new namespaces only, but one also on this machine's interfaces would make
        every figure ambiguous to whoever reads them."""
        found = []
        existing = _ip("netns", "list").stdout.split()
        found += [f"network namespace {n} exists (ip netns del {n})"
                  for n in (self.name, self.clients) if n in existing]
        for entry in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
            for a in entry.get("addr_info", []):
                net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
                if net.overlaps(self.net):
                    found.append(f"{entry['ifname']} has {a['local']}/{a['prefixlen']}, which "
                                 f"overlaps {self.net} (choose another --subnet)")
        return found

    def __enter__(self) -> Netns:
        if os.geteuid() != 0:
            raise SystemExit("run as root: the benchmark creates network namespaces and a veth pair")
        busy = self.conflicts()
        if busy:
            raise SystemExit("refusing to start: " + "; ".join(busy))
        self.created = True  # from here on, __exit__ removes whatever exists
        try:
            _ip("netns", "add", self.name)
            _ip("netns", "add", self.clients)
            _ip("link", "add", self.host_if, "netns", self.clients, "type", "veth",
                "peer", "name", self.inner_if, "netns", self.name)
            for ns, dev, ip in ((self.clients, self.host_if, self.host_ip),
                                (self.name, self.inner_if, self.inner_ip)):
                _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            self.__exit__(None, None, None)
            raise SystemExit(f"creating the namespaces failed: {' '.join(exc.cmd)}: {exc.stderr}") from exc
        self._wait_carrier()
        return self

    def _wait_carrier(self) -> None:
        # The kernel reports a veth's carrier a moment after both ends are up; Janus's HTTP
        # transport refuses to bind to an address whose interface is not running yet.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [json.loads(_ip("-n", ns, "-j", "link", "show", "dev", dev).stdout)[0]["operstate"]
                      for ns, dev in ((self.clients, self.host_if), (self.name, self.inner_if))]
            if states == ["UP", "UP"]:
                return
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise SystemExit(f"the veth pair {self.host_if}/{self.inner_if} did not come up within 10 s")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.created:
            return
        # Deleting a namespace deletes its veth end, and with it the other end.
        for ns in (self.name, self.clients):
            _ip("netns", "del", ns, check=False)
        self.created = False

    def enter_clients(self) -> None:
        """Move this process (and the processes it starts from now on) into the clients'
        namespace. Sockets opened before stay where they are: call it before any."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.clients}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.clients}")
        finally:
            os.close(fd)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the SFU's namespace (iproute2 execs it: the pid is the program's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def snmp(self) -> dict[str, dict[str, int]]:
        """The SFU namespace's /proc/net/snmp."""
        out = subprocess.run(self.command(["cat", "/proc/net/snmp"]), check=True,
                             capture_output=True, text=True, timeout=30).stdout
        return parse_snmp(out)


def own_snmp() -> dict[str, dict[str, int]]:
    """This process's namespace's /proc/net/snmp (after enter_clients: the clients')."""
    return parse_snmp(Path("/proc/net/snmp").read_text())
