"""Which addresses the gateway offers in ICE, and the public address it announces.

aioice (under aiortc) gathers host candidates on every interface except 127.0.0.1 and has no
setting for it; :func:`use_host_addresses` pins the list (the loopback in tests, the media
interface in production). :func:`announce` rewrites the host candidates of an SDP to the
node's public IP when it sits behind 1:1 NAT (a cloud VM's floating IP).
"""

from __future__ import annotations

import re

import aioice.ice

_original = aioice.ice.get_host_addresses


def use_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates only on ``addresses``; an empty list restores aioice's choice."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    pinned = list(addresses)

    def pinned_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = pinned_addresses


_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$", re.M)


def announce(sdp: str, public_ip: str) -> str:
    if not public_ip:
        return sdp
    return _CANDIDATE.sub(lambda m: m.group(1) + public_ip + m.group(3), sdp)
