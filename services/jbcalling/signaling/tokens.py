"""Participant tokens: signed (HS256), expiring, bound to one room, role host or guest; and
waiting tokens (role ``waiting``) of a locked room's lobby, good only for asking about the request.

Error tree: TokenError (permanent: ask the participant to join again)
    ├── expired        the token's exp has passed
    ├── invalid        bad signature, malformed, or missing a claim
    └── wrong room     valid, but for another room
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

Role = Literal["host", "guest"]
ISSUER = "jbcalling-signaling"


class TokenError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    room: str
    participant: str
    role: Role
    expires: int


def issue(secret: str, room: str, participant: str, role: Role, ttl_s: int) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "room": room, "sub": participant, "role": role, "iat": now,
               "exp": now + ttl_s}
    return jwt.encode(payload, secret, algorithm="HS256")


def _decode(secret: str, token: str, room: str) -> dict[str, Any]:
    """The claims of a signed, unexpired token for ``room``; TokenError otherwise."""
    try:
        data: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                                          options={"require": ["exp", "room", "sub", "role"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid") from None
    if data["room"] != room:
        raise TokenError("wrong room")
    return data


def verify(secret: str, token: str, room: str) -> Claims:
    data = _decode(secret, token, room)
    if data["role"] not in ("host", "guest"):
        raise TokenError("invalid")
    return Claims(data["room"], data["sub"], data["role"], int(data["exp"]))


# A waiting token (a locked room's lobby: waiting.py) names a request, not a participant, and is
# good for nothing but asking about it: ``verify`` refuses its role.
WAITING = "waiting"


def issue_waiting(secret: str, room: str, request: str, ttl_s: int) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "room": room, "sub": request, "role": WAITING, "iat": now,
               "exp": now + ttl_s}
    return jwt.encode(payload, secret, algorithm="HS256")


def verify_waiting(secret: str, token: str, room: str) -> str:
    """The request id of a waiting token for ``room``; TokenError otherwise."""
    data = _decode(secret, token, room)
    if data["role"] != WAITING:
        raise TokenError("not a waiting token")
    return str(data["sub"])
