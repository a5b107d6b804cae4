"""The web client: the call page (``/`` and the room links ``/r/{room}``) and its ES modules
and stylesheet under ``/static``, served as they are in ``web/`` (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).with_name("web")
# The page loads nothing from elsewhere and runs no inline script.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
           "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)"}


def install(app: FastAPI) -> None:
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html", headers=HEADERS)

    app.add_api_route("/", page, include_in_schema=False)
    app.add_api_route("/r/{room_id}", page, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
