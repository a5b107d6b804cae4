"""The mt FastAPI application: ``POST /v1/translate`` plus /health, /ready, /metrics.

Request path: validate -> split each text into sentences -> look every sentence up in the Redis
cache -> micro-batch the misses into the direction's translator -> store them -> join the
sentences back per text.

Errors (all JSON ``{"error": {"code", "message", ...}}``; the service stays up):
- 400 ``unsupported_language``: a language or direction this service can never serve (permanent);
- 413 ``too_long``: a text over ``max_chars`` or more than ``max_texts`` texts, with the limit;
  413 ``too_large``: a body larger than any valid request (common/limits.py), unread;
- 422: a malformed body or an empty text;
- 503 ``model_missing``: the direction's model is not loaded (with the jbctl command that fetches
  it); 503 ``busy``: the queue is full (retryable, with Retry-After).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram
from pydantic import BaseModel, Field

from jbcalling.common import health, limits
from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import LANGUAGES
from jbcalling.mt.batcher import BatchMetrics, Busy, MicroBatcher
from jbcalling.mt.cache import Cache, key
from jbcalling.mt.engine import DecodeOptions, PairEngine
from jbcalling.mt.settings import MtSettings
from jbcalling.speech.modelfiles import MissingModel
from jbcalling.speech.text import sentences

log = logging.getLogger("jbcalling.mt")


class TranslateRequest(BaseModel):
    # The enum is documented, not validated: another language gets 400 unsupported_language
    # with the supported directions, which a 422 would not say.
    source: str = Field(description="Language of the texts: vi or en.",
                        json_schema_extra={"enum": list(LANGUAGES)})
    target: str = Field(description="Language to translate into: vi or en.",
                        json_schema_extra={"enum": list(LANGUAGES)})
    texts: list[str] = Field(min_length=1, description="Texts to translate, in order.")


class TranslateResponse(BaseModel):
    translations: list[str]
    model: str = Field(description="Version (weights hash) of the model that translated.")
    cached: int = Field(description="Sentences served from the cache.")


def load_engines(settings: MtSettings) -> tuple[dict[str, PairEngine], dict[str, str]]:
    engines: dict[str, PairEngine] = {}
    problems: dict[str, str] = {}
    options = DecodeOptions(settings.beam_size, settings.max_decoding_length,
                            settings.min_decoding_length)
    for pair, model in settings.pairs.items():
        try:
            engines[pair] = PairEngine(pair, model, settings.models_dir / model,
                                       settings.translators, options)
        except MissingModel as exc:
            problems[pair] = str(exc)
            log.error("translation direction unavailable", extra={"pair": pair, "reason": str(exc)})
    return engines, problems


def create_app(settings: MtSettings) -> FastAPI:
    registry = CollectorRegistry()
    engines, problems = load_engines(settings)
    metrics = BatchMetrics(registry)
    batchers = {pair: MicroBatcher(pair, engine.translate, workers=engine.workers,
                                   max_batch=settings.max_batch,
                                   max_wait_s=settings.max_wait_ms / 1000,
                                   max_queue=settings.max_queue, metrics=metrics)
                for pair, engine in engines.items()}
    cache = Cache(settings.redis_url, settings.redis_timeout_s, settings.cache_ttl_s, registry)
    latency = Histogram("jb_mt_request_seconds", "Translate request latency", ["pair"],
                        registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(max_workers=max(1, settings.translators * len(engines)),
                                      thread_name_prefix="mt")
        for b in batchers.values():
            b.start(executor)
        log.info("mt started", extra={"pairs": sorted(engines), "unavailable": sorted(problems)})
        yield
        for b in batchers.values():
            await b.stop()
        executor.shutdown(wait=True)
        await cache.close()

    app = FastAPI(title="jbcalling mt", version=settings.version, lifespan=lifespan)
    app.state.batchers = batchers
    app.state.engines = engines

    @app.post("/v1/translate", response_model=TranslateResponse,
              responses={400: {}, 413: {}, 503: {}})
    async def translate(body: TranslateRequest) -> Any:
        pair = f"{body.source}-{body.target}"
        if body.source not in LANGUAGES or body.target not in LANGUAGES or body.source == body.target:
            raise ServiceError(400, "unsupported_language", f"cannot translate {body.source!r} to "
                               f"{body.target!r}", supported=[f"{a}-{b}" for a in LANGUAGES
                                                              for b in LANGUAGES if a != b])
        if len(body.texts) > settings.max_texts:
            raise ServiceError(413, "too_long", f"{len(body.texts)} texts; at most {settings.max_texts}",
                               limit_texts=settings.max_texts)
        for i, text in enumerate(body.texts):
            if len(text) > settings.max_chars:
                raise ServiceError(413, "too_long", f"text {i} has {len(text)} characters; at most "
                                   f"{settings.max_chars}", limit_chars=settings.max_chars)
            if not text.strip():
                raise ServiceError(422, "empty_text", f"text {i} is empty")
        engine = engines.get(pair)
        if engine is None:
            raise ServiceError(503, "model_missing", problems.get(pair, f"{pair} is not configured"),
                               pair=pair, available=sorted(engines))
        t0 = time.perf_counter()
        split = [sentences(t) for t in body.texts]
        unique = list(dict.fromkeys(s for parts in split for s in parts))
        keys = [key(engine.version, pair, s) for s in unique]
        found = dict(zip(unique, await cache.get(keys), strict=True))
        todo = [s for s in unique if found[s] is None]
        try:
            done = await batchers[pair].submit(todo) if todo else []
        except Busy as exc:
            raise ServiceError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
        fresh = dict(zip(todo, done, strict=True))
        await cache.put({key(engine.version, pair, s): fresh[s] for s in todo})
        out = [" ".join(fresh.get(s) or found[s] or "" for s in parts) for parts in split]
        latency.labels(pair).observe(time.perf_counter() - t0)
        return TranslateResponse(translations=out, model=engine.version,
                                 cached=len(unique) - len(todo))

    async def probe() -> health.Readiness:
        checks = {p: ("ok (stand-in)" if e.standin else "ok") for p, e in engines.items()}
        checks.update(problems)
        checks["cache"] = await cache.check()
        load = {"queued": sum(b.queue.qsize() for b in batchers.values()),
                "active_batches": sum(b.active for b in batchers.values()),
                "translators": sum(b.workers for b in batchers.values()),
                "max_queue": settings.max_queue,
                "available": sorted(engines), "unavailable": sorted(problems)}
        return health.Readiness(bool(engines), checks, load)

    health.install(app, service="mt", version=settings.version, probe=probe, registry=registry)
    # the largest body a valid request can need; larger ones are refused before they are read
    limits.install(app, limits.json_limit(settings.max_chars * settings.max_texts))
    return app
