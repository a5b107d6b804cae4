"""The web client: the call page (``/`` and the room links ``/r/{room}``) and its ES modules
and stylesheet under ``/static``, served as they are in ``web/`` (no build step).

Every HTTP response of signaling carries ``X-Content-Type-Options: nosniff`` (``NoSniff``): a
browser must take each body for the type it is served as, never guess HTML or script in it.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB = Path(__file__).with_name("web")
# A Host header as browsers send it (name or address, optional port): anything else gets no
# WebSocket origin in the policy rather than text that could add directives to it.
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
# The page loads nothing from elsewhere and runs no inline script; it connects only to its own
# origin: fetch to 'self', the participant WebSocket to the same host (ws: under http, wss: under
# https; CSP 'self' alone does not cover WebSockets in every browser).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src {connect}; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache",
           "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)"}


def csp(scheme: str, host: str) -> str:
    """The page's Content-Security-Policy when it was fetched as ``scheme://host``."""
    connect = "'self'"
    if _HOST.fullmatch(host):
        connect += f" {'wss' if scheme == 'https' else 'ws'}://{host}"
    return CSP.format(connect=connect)


class NoSniff:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers,
                                                  (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def install(app: FastAPI) -> None:
    def page(request: Request) -> FileResponse:
        policy = csp(request.url.scheme, request.headers.get("host", ""))
        return FileResponse(WEB / "index.html", media_type="text/html",
                            headers={**HEADERS, "Content-Security-Policy": policy})

    app.add_api_route("/", page, include_in_schema=False)
    app.add_api_route("/r/{room_id}", page, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(NoSniff)
