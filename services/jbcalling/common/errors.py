"""One error shape for every service's HTTP API: ``{"error": {"code", "message", ...}}``
(protocol.ErrorBody).

A route raises ``ServiceError(status, code, message)``; the handler that ``health.install`` adds
answers it, FastAPI's own HTTPException and request validation errors in that same shape, so
that the web client (services/jbcalling/signaling/web/api.js), signaling's gateway client and
jbctl read one body whatever the service.

    ServiceError            status + code + message (+ extra fields, + headers)
    ├── RoomError           signaling: a room that cannot be joined
    ├── MediaError          signaling: a media negotiation that failed (``retryable``)
    └── (raised directly)   gateway, mt, tts: bad requests, busy, missing models
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jbcalling.common.protocol import ErrorBody, error_body


class ServiceError(Exception):
    """A request the service cannot serve; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "too_large", 429: "rate_limited"}


def install_handlers(app: FastAPI) -> None:
    """Answer ServiceError, HTTPException and request validation errors as ``ErrorBody``, and
    say so in the OpenAPI of every route."""

    async def service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return exc.response()

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return JSONResponse(error_body("bad_body", problems), status_code=422)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # The spec FastAPI generates, then every operation's error answers as ours: its own
        # 422 body (HTTPValidationError) is never sent.
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs"))
        schemas["ErrorBody"] = body
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for ops in spec.get("paths", {}).values():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for status, what in (("4XX", "the request cannot be served"),
                                     ("5XX", "the service cannot serve it now")):
                    responses[status] = {"description": what, "content": ref}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
