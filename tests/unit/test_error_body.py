"""Every service answers errors in one shape, ``{"error": {"code", "message"}}``, and its OpenAPI
says so: the handler health.install adds, run on a real app in process, and the OpenAPI of each
service's real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from jbcalling.common import health
from jbcalling.common.errors import ServiceError

pytestmark = pytest.mark.unit


class Body(BaseModel):
    n: int


async def _ready() -> health.Readiness:
    return health.Readiness(True)


def _app() -> FastAPI:
    app = FastAPI()
    health.install(app, service="x", version="0", probe=_ready, registry=CollectorRegistry())

    @app.post("/busy")
    async def busy() -> None:
        raise ServiceError(503, "busy", "2 requests in progress", headers={"Retry-After": "1"},
                           limit=2)

    @app.post("/old")
    async def old() -> None:
        raise HTTPException(403, "not yours")

    @app.post("/body")
    async def body(b: Body) -> int:
        return b.n

    return app


def test_service_errors_http_errors_and_bad_bodies_share_one_shape() -> None:
    with TestClient(_app()) as client:
        busy = client.post("/busy")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json() == {"error": {"code": "busy", "message": "2 requests in progress",
                                         "limit": 2}}
        assert client.post("/old").json() == {"error": {"code": "forbidden",
                                                        "message": "not yours"}}
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        bad = client.post("/body", json={"n": "many"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_body"
        assert "body.n" in bad.json()["error"]["message"]


def _error_responses(app: FastAPI) -> dict[str, Any]:
    spec = app.openapi()
    out = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            out[f"{method.upper()} {path}"] = op["responses"]
    assert "ErrorBody" in spec["components"]["schemas"]
    return out


def _service_apps(tmp_path: Path) -> dict[str, FastAPI]:
    from jbcalling.gateway.app import create_app as gateway
    from jbcalling.gateway.settings import GatewaySettings
    from jbcalling.mt.app import create_app as mt
    from jbcalling.mt.settings import MtSettings
    from jbcalling.signaling.app import create_app as signaling
    from jbcalling.signaling.settings import SignalingSettings
    from jbcalling.stt.app import create_app as stt
    from jbcalling.stt.settings import SttSettings
    from jbcalling.tts.app import create_app as tts
    from jbcalling.tts.settings import TtsSettings

    # No model and no Redis is reached: building an app connects nothing.
    return {"signaling": signaling(SignalingSettings(jwt_secret="k" * 32)),
            "gateway": gateway(GatewaySettings()),
            "mt": mt(MtSettings(models_dir=tmp_path)),
            "tts": tts(TtsSettings(models_dir=tmp_path)),
            "stt": stt(SttSettings(models_dir=tmp_path))}


@pytest.fixture
def gateway_hooks_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's app patches aiortc for the whole process (its receivers forward encoded
    frames instead of decoding them: gateway/rtp_forward.py): undone after the test, so that
    later tests' own aiortc peers in this process still decode."""
    from aiortc import rtcrtpreceiver, rtcrtpsender

    from jbcalling.gateway import rtp_forward

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", rtcrtpreceiver.get_decoder)
    monkeypatch.setattr(rtcrtpsender, "get_encoder", rtcrtpsender.get_encoder)
    monkeypatch.setitem(rtp_forward._installed, "done", rtp_forward._installed["done"])


def test_every_service_openapi_shows_the_error_body(tmp_path: Path,
                                                    gateway_hooks_undone: None) -> None:
    for service, app in _service_apps(tmp_path).items():
        for op, responses in _error_responses(app).items():
            for status in ("4XX", "5XX"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (service, op)
            assert "422" not in responses, (service, op, "FastAPI's own 422 body is not ours")
