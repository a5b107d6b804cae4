"""ICE servers for a participant, with time-limited TURN credentials (the TURN REST API scheme
that coturn's ``use-auth-secret`` checks: username ``<expiry>:<id>``, password
``base64(HMAC-SHA1(secret, username))``). No static TURN password is ever handed out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any


def credentials(secret: str, participant: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    expiry = int((now if now is not None else time.time()) + ttl_s)
    username = f"{expiry}:{participant}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(stun: list[str], turn: list[str], secret: str, participant: str,
                ttl_s: int) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and secret:
        user, password = credentials(secret, participant, ttl_s)
        servers.append({"urls": turn, "username": user, "credential": password})
    return servers
