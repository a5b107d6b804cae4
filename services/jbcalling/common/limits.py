"""Request-body limits enforced before the body is read: an ASGI middleware for the services.

A body over the limit is answered 413 in the uniform error body (jbcalling/common/errors.py,
code ``too_large``) without reading it:

- a ``Content-Length`` over the limit is refused at once, before the application runs (the
  client may still be sending: the server does not wait for it);
- a body without a length (chunked) is counted as it streams into the application; at the first
  byte past the limit the middleware answers 413 itself, tells the application the client went
  away (``http.disconnect``) and drops whatever the application sends after that.

WebSocket frames are limited by each service itself (stt ``max_frame_bytes``, signaling
``ws_max_message_bytes``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jbcalling.common.protocol import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A JSON string can spend 12 bytes on one character (an escaped surrogate pair, \ud83d\ude00).
JSON_BYTES_PER_CHAR = 12
JSON_OVERHEAD = 4096  # keys, numbers, punctuation and whitespace of a small request body


def json_limit(chars: int) -> int:
    """The largest JSON body a request carrying at most ``chars`` characters of text can need."""
    return chars * JSON_BYTES_PER_CHAR + JSON_OVERHEAD


class BodyLimit:
    """Answer 413 to any HTTP request whose body is over ``max_bytes``, before reading it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"the body has {declared} bytes")
            return
        seen = 0
        over = answered = started = False

        async def limited_receive() -> Message:
            nonlocal seen, over, answered
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    if not started:  # (an application that answered before reading keeps it)
                        answered = True
                        await self._refuse(send, f"the body is over {self.max_bytes} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out already; the application's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send, what: str) -> None:
        body = json.dumps(error_body("too_large", f"{what}; this endpoint takes at most "
                                     f"{self.max_bytes} bytes", limit_bytes=self.max_bytes))
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def install(app: Any, max_bytes: int) -> None:
    """Put the limit in front of every route of a FastAPI ``app`` (outermost middleware)."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
