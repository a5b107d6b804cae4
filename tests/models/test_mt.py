"""mt over its own HTTP API, with the stand-in OPUS-MT translators and a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from jbcalling.mt.app import create_app
from jbcalling.mt.settings import MtSettings
from jbcalling.speech.layout import DEV_MT
from speech_fixtures import models_dir  # noqa: F401

pytestmark = pytest.mark.models


def settings(models: Path, **kw: object) -> MtSettings:
    base: dict[str, object] = {"models_dir": models, "pairs": DEV_MT, "beam_size": 1,
                               "max_decoding_length": 12}
    base.update(kw)
    return MtSettings(**base)  # type: ignore[arg-type]


def test_both_directions_are_deterministic(models_dir: Path, serve, clean_environ) -> None:  # noqa: F811
    with serve(create_app(settings(models_dir))) as srv:
        for source, target in (("en", "vi"), ("vi", "en")):
            body = {"source": source, "target": target,
                    "texts": ["Hello there. How are you?", "Xin chào các bạn."]}
            first = httpx.post(srv.url + "/v1/translate", json=body, timeout=30)
            again = httpx.post(srv.url + "/v1/translate", json=body, timeout=30)
            assert first.status_code == 200, first.text
            out = first.json()["translations"]
            assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
            assert again.json()["translations"] == out
        ready = httpx.get(srv.url + "/ready", timeout=10).json()
        assert ready["ready"] is True
        assert ready["checks"]["en-vi"] == "ok (stand-in)" and ready["checks"]["cache"] == "disabled"


def test_concurrent_requests_share_batch_calls(models_dir: Path, serve, clean_environ) -> None:  # noqa: F811
    app = create_app(settings(models_dir, max_wait_ms=30, max_batch=32))
    n = 16

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.post(url + "/v1/translate",
                            json={"source": "en", "target": "vi", "texts": [f"Sentence number {i}."]})
                for i in range(n)))

    with serve(app) as srv:
        responses = asyncio.run(burst(srv.url))
        assert all(r.status_code == 200 for r in responses)
        calls = app.state.batchers["en-vi"].calls
        assert 1 <= calls < n, f"{n} requests took {calls} batch calls"
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
        assert f'jb_mt_batches_total{{pair="en-vi"}} {calls:.1f}' in metrics


def test_repeated_sentence_comes_from_redis(models_dir: Path, serve, redis_url: str,  # noqa: F811
                                            clean_environ) -> None:
    app = create_app(settings(models_dir, redis_url=redis_url))
    body = {"source": "vi", "target": "en", "texts": ["Cảm ơn bạn rất nhiều vì đã đến."]}
    with serve(app) as srv:
        first = httpx.post(srv.url + "/v1/translate", json=body, timeout=30).json()
        calls = app.state.batchers["vi-en"].calls
        body["texts"] = ["  Cảm ơn bạn   rất nhiều vì đã đến. "]  # same after normalization
        second = httpx.post(srv.url + "/v1/translate", json=body, timeout=30).json()
        assert first["cached"] == 0 and second["cached"] == 1
        assert second["translations"] == first["translations"]
        assert app.state.batchers["vi-en"].calls == calls, "a cached sentence reached the engine"
        assert "jb_mt_cache_hits_total 1.0" in httpx.get(srv.url + "/metrics", timeout=10).text
        assert httpx.get(srv.url + "/ready", timeout=10).json()["checks"]["cache"] == "ok"


def test_unreachable_redis_only_skips_the_cache(models_dir: Path, serve, clean_environ) -> None:  # noqa: F811
    app = create_app(settings(models_dir, redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2))
    with serve(app) as srv:
        r = httpx.post(srv.url + "/v1/translate",
                       json={"source": "en", "target": "vi", "texts": ["Hi."]}, timeout=30)
        assert r.status_code == 200
        ready = httpx.get(srv.url + "/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"]["cache"].startswith("unreachable")


def test_missing_direction_is_a_503_for_that_pair(models_dir: Path, tmp_path: Path, serve,  # noqa: F811
                                                  clean_environ) -> None:
    pairs = {"en-vi": DEV_MT["en-vi"], "vi-en": "opus-mt-vi-en"}
    with serve(create_app(settings(models_dir, pairs=pairs))) as srv:
        r = httpx.post(srv.url + "/v1/translate",
                       json={"source": "vi", "target": "en", "texts": ["Xin chào."]}, timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_missing"
        assert "jbctl models pull opus-mt-vi-en" in r.json()["error"]["message"]
        assert "model.bin" in r.json()["error"]["message"]
        ok = httpx.post(srv.url + "/v1/translate",
                        json={"source": "en", "target": "vi", "texts": ["Hello."]}, timeout=30)
        assert ok.status_code == 200
        ready = httpx.get(srv.url + "/ready", timeout=10).json()
        assert ready["ready"] is True and ready["load"]["unavailable"] == ["vi-en"]
        assert "jbctl models pull opus-mt-vi-en" in ready["checks"]["vi-en"]
    with serve(create_app(settings(tmp_path))) as srv:
        assert httpx.get(srv.url + "/ready", timeout=10).status_code == 503


def test_bad_input_is_a_clear_error_and_the_service_stays_up(models_dir: Path, serve,  # noqa: F811
                                                             clean_environ) -> None:
    with serve(create_app(settings(models_dir, max_chars=2000))) as srv:
        url = srv.url + "/v1/translate"

        def post(**body: object) -> httpx.Response:
            return httpx.post(url, json=body, timeout=30)

        r = post(source="fr", target="en", texts=["Bonjour"])
        assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_language"
        r = post(source="en", target="en", texts=["Hello"])
        assert r.status_code == 400
        r = post(source="en", target="vi", texts=["x" * 100_000])
        assert r.status_code == 413 and r.json()["error"]["limit_chars"] == 2000
        r = post(source="en", target="vi", texts=["hi"] * 1000)
        assert r.status_code == 413 and r.json()["error"]["limit_texts"] == 64
        assert post(source="en", target="vi", texts=["   "]).status_code == 422
        assert post(source="en", target="vi", texts=[]).status_code == 422
        bad = httpx.post(url, content=b"{not json", timeout=10,
                         headers={"content-type": "application/json"})
        assert bad.status_code == 422
        assert httpx.get(srv.url + "/health", timeout=10).status_code == 200
        assert post(source="en", target="vi", texts=["Still here."]).status_code == 200
