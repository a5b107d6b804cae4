"""coturn, for real, with the jb_turn role's rendered configuration, tried as an attacker would.

The edge node is a network namespace the test creates: its "public" address (also its node
address, as in inventory.ini) on a veth pair whose other end, in the test's namespace, is the
participant; the other two nodes' addresses sit on the same namespace's loopback interface, so
that they are reachable from the relay and only coturn's configuration stands in the way. The
role itself (ansible-playbook with a three-node inventory and the repository's group_vars; no
packages, systemd or Nomad here) writes turnserver.conf and loads the relay firewall into that
namespace; Debian's coturn runs with that
file; a real jb-gateway (with its Redis) answers there on the edge address, in the edge node's
media port range (40000-44999, as jb_base sets it).

From the participant's side, with credentials made by signaling's own code (signaling/turn.py):
- two aiortc participants with iceTransportPolicy "relay" reach the gateway through coturn and
  receive each other's audio;
- a relay to another node's address, to the loopback or to a private address is refused (403);
  a relay to the edge address itself passes only to the gateway's media ports (a datagram to
  another port, or to coturn itself, is dropped by the relay firewall and never arrives);
- a TCP relay is refused (442); an expired or forged credential is refused (401); a credential
  holds at most jb_turn_user_quota allocations (486).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aioice import stun
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceTransportPolicy, RTCPeerConnection

from conftest import free_port
from jbcalling.client import SyntheticPeer
from jbcalling.client.peer import ice_servers_of
from jbcalling.signaling import turn

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "0123456789abcdef" * 4  # jb_tls makes 64 hex characters like these
REALM = "call.test"
UDP, TCP = 0x11000000, 0x06000000  # REQUESTED-TRANSPORT: protocol number << 24

LISTENER = r"""
import json, select, socket, sys
socks = []
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    socks.append(s)
    print(json.dumps({"bound": spec, "at": list(s.getsockname())}), flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(2048)
        print(json.dumps({"at": list(s.getsockname()), "data": data.decode(errors="replace")}),
              flush=True)
"""


def run(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"{' '.join(argv)}: {res.stderr}"
    return res.stdout


@dataclass
class Edge:
    ns: str
    tmp: Path
    edge: str  # the edge node's public (and node) address: coturn, the gateway's media
    others: list[str]  # the ai and tts nodes' addresses
    client: str  # the participant's address, in the test's namespace
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateway: str = ""
    heard: list[dict[str, Any]] = field(default_factory=list)
    listening: dict[str, tuple[str, int]] = field(default_factory=dict)

    def start(self, name: str, *argv: str, env: dict[str, str] | None = None,
              stdout: Any = None) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], env=env,
                                    stdout=stdout if stdout is not None else log, stderr=log)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]


def _free_subnet() -> int:
    """A free /28 of 203.0.113.0/24 (TEST-NET-3: not private, so only the role's node list and
    firewall can stop the relay there, and routed nowhere else)."""
    used = run("ip", "-4", "-o", "addr")
    for base in range(16, 256, 16):
        if f"203.0.113.{base + 1}/" not in used:
            return base
    raise AssertionError("no free /28 in 203.0.113.0/24")


def _render_role(e: Edge) -> Path:
    """The jb_turn role, run by ansible-playbook with the repository's group_vars and a three-node
    inventory; returns the node's root (jb_root_prefix)."""
    play = e.tmp / "play"
    (play / ".secrets" / "prod" / "turn").mkdir(parents=True)
    (play / ".secrets" / "prod" / "turn" / "secret").write_text(SECRET + "\n")
    (play / "group_vars").symlink_to(ROOT / "ansible" / "group_vars")
    hosts = [("translation01", e.edge, "edge"), ("translation02", e.others[0], "ai"),
             ("translation03", e.others[1], "tts")]
    (play / "inventory.ini").write_text(
        "[jbcalling]\n" + "".join(f"{h} jb_node_address={a} jb_public_address={a} "
                                  f"jb_node_role={r} ansible_connection=local\n"
                                  for h, a, r in hosts) + "[edge]\ntranslation01\n")
    (play / "turn.yml").write_text(yaml.safe_dump([{
        "name": "coturn's configuration and relay firewall", "hosts": "edge",
        "gather_facts": False,
        "roles": ["jb_turn"],
    }]))
    root = e.tmp / "node"
    # the site certificate that jb_origin leaves for coturn to copy
    tls = root / "etc" / "jbcalling" / "tls"
    tls.mkdir(parents=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "1", "-subj", f"/CN={REALM}", "-keyout", str(tls / "privkey.pem"),
        "-out", str(tls / "fullchain.pem"))
    # as on a VM but for what the sandbox has not: packages, systemd, the Nomad cluster
    extra = {"jb_root_prefix": str(root), "jb_public_domain": REALM,
             "jb_turn_manage_packages": False, "jb_turn_manage_service": False,
             "jb_turn_nomad_variable": False,
             "jb_node_command_prefix": ["ip", "netns", "exec", e.ns],
             "ansible_python_interpreter": sys.executable}
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "ansible" / "roles"),
           "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg"),
           "ANSIBLE_LOCAL_TEMP": str(e.tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(play / "inventory.ini"),
                          str(play / "turn.yml"), "-e", json.dumps(extra)], env=env, cwd=play,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return root


def _wait_stun(addr: tuple[str, int], what: str, e: Edge) -> None:
    deadline = time.monotonic() + 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            s.sendto(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST)), addr)
            try:
                s.recvfrom(2048)
                return
            except TimeoutError:
                continue
    pytest.fail(f"{what} does not answer STUN: " + e.log("coturn"))


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft") \
            or not shutil.which("turnserver"):
        pytest.fail("this test needs root, iproute2, nftables and Debian's coturn "
                    "(tools/setup.sh installs them): run it as CI does")
    base = _free_subnet()
    tag = f"{os.getpid() % 100000}"
    e = Edge(ns=f"jbturn{tag}", tmp=tmp_path_factory.mktemp("turn"), edge=f"203.0.113.{base + 2}",
             others=[f"203.0.113.{base + 3}", f"203.0.113.{base + 4}"],
             client=f"203.0.113.{base + 1}")
    outer, inner = f"jbt{tag}o", f"jbt{tag}i"
    try:
        run("ip", "netns", "add", e.ns)
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        run("ip", "link", "set", inner, "netns", e.ns)
        run("ip", "addr", "add", f"{e.client}/28", "dev", outer)
        run("ip", "link", "set", outer, "up")
        inside = ["ip", "netns", "exec", e.ns]
        run(*inside, "ip", "addr", "add", f"{e.edge}/28", "dev", inner)
        run(*inside, "ip", "link", "set", inner, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        for a in e.others:
            run(*inside, "ip", "addr", "add", f"{a}/32", "dev", "lo")
        # what jb_base sets on the edge node: the gateway's media ports are the ephemeral ones
        run(*inside, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 44999")

        root = _render_role(e)
        e.start("coturn", "turnserver", "-c", str(root / "etc" / "turnserver.conf"),
                "--pidfile", str(e.tmp / "turnserver.pid"), "--userdb", str(e.tmp / "turndb"))

        # UDP listeners on the nodes: the gateway's media range (an ephemeral port), another
        # port of the edge node (Consul's gossip), another node, the edge's loopback
        listen = {"media": f"{e.edge}:0", "gossip": f"{e.edge}:8301",
                  "ai": f"{e.others[0]}:40500", "loopback": "127.0.0.1:40600"}
        proc = e.start("listener", sys.executable, "-c", LISTENER, *listen.values(),
                       stdout=subprocess.PIPE)
        assert proc.stdout is not None
        for name in listen:
            line = json.loads(proc.stdout.readline() or "{}")
            assert line.get("bound") == listen[name], (line, e.log("listener"))
            e.listening[name] = (line["at"][0], line["at"][1])
        threading.Thread(target=lambda: e.heard.extend(json.loads(x) for x in proc.stdout),  # type: ignore[union-attr]
                         daemon=True).start()

        redis_port = free_port()
        e.start("redis", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no")
        port = free_port()
        e.start("gateway", str(BIN / "jb-gateway"), env={
            **os.environ, "JB_GATEWAY_HOST": e.edge, "JB_GATEWAY_PORT": str(port),
            "JB_GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "JB_GATEWAY_ICE_ADDRESSES": json.dumps([e.edge]),
            "JB_GATEWAY_CONSUL_HTTP_ADDR": "http://127.0.0.1:1"})
        e.gateway = f"http://{e.edge}:{port}"
        _wait_stun((e.edge, 3478), "coturn", e)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if httpx.get(e.gateway + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("jb-gateway did not become ready: " + e.log("gateway"))
        yield e
    finally:
        for p in reversed(e.procs):
            p.terminate()
        for p in e.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", e.ns], capture_output=True, check=False)


class TurnClient:
    """A TURN client from the participant's side (RFC 5766 long-term credentials), one UDP socket
    (one allocation); it asks for what a browser never would."""

    def __init__(self, server: tuple[str, int], username: str, password: str,
                 tcp: bool = False) -> None:
        self.server, self.username, self.password = server, username, password
        self.tcp = tcp  # the control connection over TCP, as RFC 6062 TCP relays need
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock.settimeout(3)
        if tcp:
            self.sock.connect(server)
        self.realm = ""
        self.nonce = b""

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg: stun.Message) -> stun.Message:
        if self.nonce:
            msg.attributes.update({"USERNAME": self.username, "REALM": self.realm,
                                   "NONCE": self.nonce})
            key = hashlib.md5(f"{self.username}:{self.realm}:{self.password}".encode()).digest()
            msg.add_message_integrity(key)
            msg.add_fingerprint()
        self.sock.sendto(bytes(msg), self.server) if not self.tcp else self.sock.sendall(bytes(msg))
        while True:
            reply = stun.parse_message(self._receive())
            if reply.transaction_id == msg.transaction_id:
                return reply

    def _receive(self) -> bytes:
        if not self.tcp:
            return self.sock.recvfrom(4096)[0]
        data = b""
        while len(data) < 20 or len(data) < 20 + int.from_bytes(data[2:4], "big"):
            chunk = self.sock.recv(4096)
            assert chunk, "coturn closed the TCP connection"
            data += chunk
        return data

    def request(self, method: stun.Method, **attrs: Any) -> tuple[int, stun.Message]:
        """(0 or the error code, the answer); answers the server's 401 challenge once."""
        for _ in range(3):
            msg = stun.Message(method, stun.Class.REQUEST, attributes=dict(attrs))
            reply = self._send(msg)
            if reply.message_class == stun.Class.RESPONSE:
                return 0, reply
            code = reply.attributes["ERROR-CODE"][0]
            challenged = code in (401, 438) and "NONCE" in reply.attributes
            if not challenged or (code == 401 and self.nonce):
                return code, reply
            self.realm, self.nonce = reply.attributes["REALM"], reply.attributes["NONCE"]
        return code, reply

    def allocate(self, transport: int = UDP) -> int:
        return self.request(stun.Method.ALLOCATE, **{"REQUESTED-TRANSPORT": transport,
                                                     "LIFETIME": 120})[0]

    def permit(self, peer: str) -> int:
        return self.request(stun.Method.CREATE_PERMISSION,
                            **{"XOR-PEER-ADDRESS": (peer, 9)})[0]

    def send(self, peer: tuple[str, int], data: bytes) -> None:
        msg = stun.Message(stun.Method.SEND, stun.Class.INDICATION,
                           attributes={"XOR-PEER-ADDRESS": peer, "DATA": data})
        self.sock.sendto(bytes(msg), self.server)


def _client(e: Edge, participant: str = "guest1", ttl: int = 300,
            secret: str = SECRET, tcp: bool = False) -> TurnClient:
    user, password = turn.credentials(secret, participant, ttl)
    return TurnClient((e.edge, 3478), user, password, tcp=tcp)


def _heard(e: Edge, name: str) -> list[str]:
    return [h["data"] for h in e.heard if tuple(h["at"]) == e.listening[name]]


def test_relay_reaches_only_the_gateways_media_ports(edge: Edge) -> None:
    c = _client(edge)
    try:
        assert c.allocate() == 0, edge.log("coturn")
        # coturn answers before any packet: the other nodes, loopback and private ranges
        assert c.permit(edge.others[0]) == 403
        assert c.permit(edge.others[1]) == 403
        assert c.permit("127.0.0.1") == 403
        assert c.permit("10.1.2.3") == 403
        assert c.permit("172.16.0.1") == 403
        # the edge address itself must pass (the gateway's media is there) ...
        assert c.permit(edge.edge) == 0
        # ... and the relay firewall lets through only the gateway's media ports
        deadline = time.monotonic() + 10
        while not _heard(edge, "media") and time.monotonic() < deadline:
            c.send(edge.listening["media"], b"to media")
            time.sleep(0.2)
        assert 40000 <= edge.listening["media"][1] <= 44999
        assert _dropped(edge) == 0
        # another allocation, allowed by coturn to the edge address, tries its gossip port
        # (and the other node and the loopback, which coturn never permitted)
        other, looper = _client(edge, "guest2"), _client(edge, "guest3")
        try:
            assert other.allocate() == 0 and other.permit(edge.edge) == 0
            for name in ("gossip", "ai", "loopback"):
                other.send(edge.listening[name], f"to {name}".encode())
            # a relay loop, from a third allocation (once the kernel refused one of an
            # allocation's sends, coturn 4.6.1 relayed nothing more for it here)
            assert looper.allocate() == 0 and looper.permit(edge.edge) == 0
            looper.send((edge.edge, 3478), bytes(stun.Message(stun.Method.BINDING,
                                                              stun.Class.REQUEST)))
            deadline = time.monotonic() + 10
            while _dropped(edge) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            # the gossip datagram and the loop; coturn itself never let the other two out
            assert _dropped(edge) == 2, run(*_in(edge), "nft", "list", "table", "inet", "jb_turn")
            # a fence: the first allocation's next datagram arrives after those would have
            c.send(edge.listening["media"], b"fence")
            deadline = time.monotonic() + 10
            while "fence" not in _heard(edge, "media") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "fence" in _heard(edge, "media")
            for name in ("gossip", "ai", "loopback"):
                assert _heard(edge, name) == [], name
        finally:
            other.close()
            looper.close()
    finally:
        c.close()


def _in(e: Edge) -> list[str]:
    return ["ip", "netns", "exec", e.ns]


def _dropped(e: Edge) -> int:
    """Packets the relay firewall dropped (its UDP rule's counter)."""
    table = json.loads(run(*_in(e), "nft", "-j", "list", "table", "inet", "jb_turn"))
    for item in table["nftables"]:
        rule = item.get("rule", {})
        if rule.get("comment") == "turn-relay-only-to-gateway-media":
            return int(next(x["counter"]["packets"] for x in rule["expr"] if "counter" in x))
    raise AssertionError(f"no relay rule in the edge node's ruleset: {table}")


def test_tcp_relay_is_refused(edge: Edge) -> None:
    c = _client(edge, tcp=True)  # RFC 6062: a TCP relay is asked for over TCP
    try:
        assert c.allocate(TCP) == 442  # Unsupported Transport Protocol
        assert c.allocate(UDP) == 0  # the same connection gets a UDP relay
    finally:
        c.close()


def test_expired_or_forged_credentials_are_refused(edge: Edge) -> None:
    expired, forged, good = (_client(edge, ttl=-60), _client(edge, secret="x" * 64),
                             _client(edge))
    try:
        assert expired.allocate() == 401
        assert forged.allocate() == 401
        assert good.allocate() == 0
        # a username with the expiry moved forward and the old password: refused too
        user, password = turn.credentials(SECRET, "guest1", 300)
        stamp, _, who = user.partition(":")
        later = TurnClient((edge.edge, 3478), f"{int(stamp) + 86400}:{who}", password)
        assert later.allocate() == 401
        later.close()
        # signaling's password is exactly the TURN REST API's (what coturn recomputes)
        assert base64.b64decode(password) == hmac.new(SECRET.encode(), user.encode(),
                                                      hashlib.sha1).digest()
    finally:
        for c in (expired, forged, good):
            c.close()


def test_one_credential_holds_at_most_the_user_quota(edge: Edge) -> None:
    quota = 12  # jb_turn_user_quota, docs/security.md
    user, password = turn.credentials(SECRET, "greedy", 300)
    clients = [TurnClient((edge.edge, 3478), user, password) for _ in range(quota + 1)]
    try:
        codes = [c.allocate() for c in clients]
        assert codes == [0] * quota + [486], codes  # Allocation Quota Reached
    finally:
        for c in clients:
            c.close()


class RelayPeer(SyntheticPeer):
    """A participant whose browser allows only relayed candidates."""

    def _new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(
            iceServers=self.ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY))


def test_participants_reach_the_gateway_through_the_relay(edge: Edge) -> None:
    servers = turn.ice_servers([], [f"turn:{edge.edge}:3478?transport=udp"], SECRET, "p", 300)

    async def scenario() -> None:
        peers = [RelayPeer(edge.gateway, "roomTURNAA", f"peer{i}TURN", camera=False,
                           ice_servers=ice_servers_of({"ice_servers": servers}))
                 for i in range(2)]
        try:
            async with httpx.AsyncClient(timeout=20) as http:
                for p in peers:
                    await p.connect(http)
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and not all(
                        p.receiving("audio", 50) == 1 for p in peers):
                    await asyncio.sleep(0.2)
                assert all(p.receiving("audio", 50) == 1 for p in peers), \
                    [dict(p.frames) for p in peers]
                for p in peers:
                    assert p.pc.connectionState == "connected"
                    gatherer = p.pc.getTransceivers()[0].sender.transport.transport.iceGatherer
                    kinds = {c.type for c in gatherer.getLocalCandidates()}
                    assert kinds == {"relay"}, kinds
        finally:
            for p in peers:
                await p.close()

    asyncio.run(scenario())
