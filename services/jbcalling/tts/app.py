"""The tts FastAPI application: ``POST /v1/synthesize`` plus /health, /ready, /metrics.

The response streams raw PCM (s16le, mono; ``audio/L16``, the rate in ``X-Sample-Rate`` and the
content type) or a WAV whose header declares an open-ended length, one sentence at a time.

Errors (JSON ``{"error": {"code", "message", ...}}``; the service stays up): 400
``unsupported_language``; 413 ``too_long`` (with the limit) or ``too_large`` (a body larger
than any valid request, refused unread: common/limits.py); 422 an empty text or a rate outside
0.5-2.0; 503 ``model_missing`` (the jbctl command that fetches the voice) or ``busy``
(retryable, with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field

from jbcalling.common import health, limits
from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import LANGUAGES
from jbcalling.speech.modelfiles import MissingModel
from jbcalling.tts.engine import Voice
from jbcalling.tts.settings import TtsSettings

log = logging.getLogger("jbcalling.tts")


class SynthesizeRequest(BaseModel):
    # The enum is documented, not validated: another language gets 400 unsupported_language.
    lang: str = Field(description="Language of the text: vi or en.",
                      json_schema_extra={"enum": list(LANGUAGES)})
    text: str = Field(description="Text to speak.")
    rate: float = Field(1.0, ge=0.5, le=2.0, description="Speaking rate; 1.0 is the voice's own.")
    format: Literal["pcm", "wav"] = Field("pcm", description="pcm: raw s16le; wav: a WAV stream.")


def wav_header(sample_rate: int) -> bytes:
    """A WAV header for a stream of unknown length (sizes set to the maximum, as streamers do)."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", unknown))


def create_app(settings: TtsSettings) -> FastAPI:
    registry = CollectorRegistry()
    voices: dict[str, Voice] = {}
    problems: dict[str, str] = {}
    for lang, model in settings.voices.items():
        try:
            voices[lang] = Voice(lang, model, settings.models_dir / model, settings.onnx_threads)
        except MissingModel as exc:
            problems[lang] = str(exc)
            log.error("voice unavailable", extra={"lang": lang, "reason": str(exc)})
    pool: dict[str, ThreadPoolExecutor] = {}
    first_audio = Histogram("jb_tts_first_audio_seconds", "Request to first audio byte", ["lang"],
                            registry=registry)
    rtf = Histogram("jb_tts_real_time_factor", "Synthesis time / audio duration, per sentence",
                    ["lang"], buckets=(0.02, 0.05, 0.1, 0.2, 0.5, 1, 2), registry=registry)
    audio_seconds = Counter("jb_tts_audio_seconds_total", "Audio synthesized, seconds", ["lang"],
                            registry=registry)
    active = Gauge("jb_tts_active_requests", "Requests in progress", registry=registry)
    state = {"pending": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool["executor"] = ThreadPoolExecutor(max_workers=settings.workers,
                                              thread_name_prefix="tts")
        log.info("tts started", extra={"voices": sorted(voices), "unavailable": sorted(problems)})
        yield
        pool.pop("executor").shutdown(wait=True)

    app = FastAPI(title="jbcalling tts", version=settings.version, lifespan=lifespan)

    async def speak(voice: Voice, body: SynthesizeRequest, t0: float) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        it = voice.sentences(body.text, body.rate)
        first = True
        # Counted here, not in the handler: a client gone before the body starts never leaks
        # a slot (the limit is checked in the handler, so it is soft by a few requests).
        state["pending"] += 1
        active.inc()
        try:
            if body.format == "wav":
                yield wav_header(voice.sample_rate)
            while True:
                s0 = time.perf_counter()
                pcm = await loop.run_in_executor(pool["executor"], next, it, None)
                if pcm is None:
                    break
                seconds = len(pcm) / 2 / voice.sample_rate
                rtf.labels(voice.lang).observe((time.perf_counter() - s0) / max(seconds, 1e-3))
                audio_seconds.labels(voice.lang).inc(seconds)
                if first:
                    first_audio.labels(voice.lang).observe(time.perf_counter() - t0)
                    first = False
                yield pcm
        finally:
            state["pending"] -= 1
            active.dec()

    @app.post("/v1/synthesize", responses={200: {"content": {"audio/L16": {}, "audio/wav": {}}},
                                           400: {}, 413: {}, 503: {}})
    async def synthesize(body: SynthesizeRequest) -> Any:
        t0 = time.perf_counter()
        if body.lang not in LANGUAGES:
            raise ServiceError(400, "unsupported_language", f"no voice for {body.lang!r}",
                               supported=list(LANGUAGES))
        if len(body.text) > settings.max_chars:
            raise ServiceError(413, "too_long", f"text has {len(body.text)} characters; at most "
                               f"{settings.max_chars}", limit_chars=settings.max_chars)
        if not body.text.strip():
            raise ServiceError(422, "empty_text", "text is empty")
        voice = voices.get(body.lang)
        if voice is None:
            raise ServiceError(503, "model_missing", problems.get(body.lang, f"no voice for {body.lang}"),
                               lang=body.lang, available=sorted(voices))
        if state["pending"] >= settings.max_pending:
            raise ServiceError(503, "busy", f"{state['pending']} requests in progress",
                                     headers={"Retry-After": "1"})
        rate = voice.sample_rate
        media = "audio/wav" if body.format == "wav" else f"audio/L16; rate={rate}; channels=1"
        headers = {"X-Sample-Rate": str(rate), "X-Channels": "1", "X-Sample-Format": "s16le",
                   "X-Voice": voice.model}
        return StreamingResponse(speak(voice, body, t0), media_type=media, headers=headers)

    async def probe() -> health.Readiness:
        checks = {lang: "ok (stand-in)" if v.standin else "ok" for lang, v in voices.items()}
        checks.update(problems)
        load = {"pending": state["pending"], "max_pending": settings.max_pending,
                "workers": settings.workers, "available": sorted(voices),
                "unavailable": sorted(problems)}
        return health.Readiness(bool(voices), checks, load)

    health.install(app, service="tts", version=settings.version, probe=probe, registry=registry)
    # the largest body a valid request can need; larger ones are refused before they are read
    limits.install(app, limits.json_limit(settings.max_chars))
    return app
