"""signaling's /health, /ready and /metrics, served by uvicorn, against a real Redis server."""

import httpx
import pytest

from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings

pytestmark = pytest.mark.integration
SECRET = "s" * 40


def test_ready_when_redis_answers(redis_url: str, serve) -> None:  # type: ignore[no-untyped-def]
    with serve(create_app(SignalingSettings(redis_url=redis_url, jwt_secret=SECRET))) as srv:
        assert httpx.get(srv.url + "/health").json()["status"] == "alive"
        ready = httpx.get(srv.url + "/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok"}
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'jb_http_requests_total{path="/ready",status="200"}' in metrics


def test_not_ready_names_redis_when_it_is_down(serve) -> None:  # type: ignore[no-untyped-def]
    app = create_app(SignalingSettings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.5,
                                       jwt_secret=SECRET))
    with serve(app) as srv:
        ready = httpx.get(srv.url + "/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("unreachable")
        assert httpx.get(srv.url + "/health").status_code == 200
