"""The stt FastAPI application: ``WS /v1/stream?lang=vi|en`` plus /health, /ready, /metrics.

Protocol: the client sends binary frames of PCM s16le mono 16 kHz (any length up to
``max_frame_bytes``, an even number of bytes) and may send ``{"type": "end"}`` as text to flush:
the open utterance becomes a final and the server closes with 1000. The server sends JSON:
``{"type": "ready", ...}`` once, then ``{"type": "partial"|"final", "segment", "text", "lang",
"start_ms", "end_ms"}``, and ``{"type": "error", "code", "message"}`` before closing on a
problem. Close codes: 1003 bad data (sample rate, odd-length frame, text frame), 1008 an
unsupported language, 1009 a frame too large, 1011 model missing or recognizer failure,
1013 full (code ``busy``, with ``capacity_streams``: the instance serves as many streams as it
recognizes in real time, capacity.py; also a stream already open when the observed capacity falls
below the streams open: the newest go): retry later or elsewhere. The service stays up whatever a
client sends.

A stream that falls more than ``max_backlog_s`` behind is not closed: the audio waiting is
dropped (``{"type": "skipped", "dropped_s"}``), the open utterance discarded, and recognition
resumes at the next pause (``{"type": "resumed", "dropped_s", "skipped_s"}``: all the audio
dropped during the skip, and the audio passed over to reach the pause); a client that dropped
audio before the stream opened asks for the same start with ``from_pause=1`` (stt/backend.py).
No result comes from audio cut in the middle of a sentence.

Session limits (``ready`` states them): a stream takes at most ``max_session_s`` of audio and
is closed after ``idle_timeout_s`` without an audio frame. Either way the open utterance becomes
a final, then ``{"type": "closed", "reason": "max_length"|"idle", "message"}`` and a close with
1000 and the reason: a client opens a new stream (the gateway hands over before the limit,
between utterances, and after ``idle`` waits for audio: gateway/pipeline.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.websockets import WebSocketDisconnect, WebSocketState

from jbcalling.common import health, limits
from jbcalling.common.protocol import LANGUAGES
from jbcalling.speech.modelfiles import MissingModel
from jbcalling.stt.admission import Admission, Session
from jbcalling.stt.backend import Backend
from jbcalling.stt.capacity import Capacity
from jbcalling.stt.events import Notice, Result
from jbcalling.stt.loader import load_backends
from jbcalling.stt.settings import SttSettings

log = logging.getLogger("jbcalling.stt")
MAX_QUEUED_RESULTS = 256
HTTP_MAX_BODY_BYTES = 1024
Item = Result | Notice | Exception | None


class SessionOver(Exception):
    """A stream reached a session limit: it ends normally, with its last final."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class Close(Exception):
    def __init__(self, code: str, close_code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.close_code, self.message = code, close_code, message
        self.extra = extra  # more fields of the error message


def create_app(settings: SttSettings) -> FastAPI:
    registry = CollectorRegistry()
    backends, problems = load_backends(settings)
    results = Counter("jb_stt_results", "Results sent", ["lang", "type"], registry=registry)
    refused = Counter("jb_stt_refused", "Streams refused or closed on an error", ["code"],
                      registry=registry)
    limited = Counter("jb_stt_sessions_limited", "Streams closed at a session limit", ["reason"],
                      registry=registry)
    received = Counter("jb_stt_audio_received_seconds", "Audio received", ["lang"],
                       registry=registry)
    active = Gauge("jb_stt_active_streams", "Open streams", ["lang"], registry=registry)
    rtf = Gauge("jb_stt_real_time_factor", "Worker time / audio time since start", ["lang"],
                registry=registry)
    decode = Histogram("jb_stt_decode_seconds", "Duration of one decode call (batch: all ready "
                       "streams; final / partial: VAD utterances)", ["lang", "kind"],
                       registry=registry)
    capacity = Capacity(settings.capacity_streams, settings.capacity_budget,
                        settings.max_sessions, sorted(backends), settings.capacity_probe_s,
                        settings.capacity_window_s, settings.capacity_lag_s)
    Gauge("jb_stt_capacity_streams", "Streams this instance recognizes in real time (measured "
          "at start, then observed; or configured); beyond: refused with busy",
          registry=registry).set_function(lambda: float(capacity.streams))
    admission = Admission(capacity, backends, registry)
    dropped = Counter("jb_stt_audio_dropped_seconds", "Audio received and not recognized "
                      "(reason backlog: the stream fell behind and what waited was dropped; "
                      "to_pause: passed over to reach the next pause after that, or at a "
                      "from_pause start)", ["lang", "reason"], registry=registry)
    for lang, b in backends.items():
        b.observe = lambda kind, seconds, lang=lang: decode.labels(lang, kind).observe(seconds)  # type: ignore[misc]
        rtf.labels(lang).set_function(b.real_time_factor)
        active.labels(lang).set_function(lambda b=b: float(b.active))  # type: ignore[misc]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # each worker measures before it serves, one language after the other: a probe must not
        # compete with streams or with another probe (capacity.py); the process answers
        # nothing meanwhile
        for lang, b in backends.items():
            key = (settings.languages.get(lang, f"auto:{settings.langid_model}"),
                   str(settings.models_dir), settings.threads,
                   settings.partial_interval_ms, settings.partial_first_ms,
                   settings.whisper_window_s, settings.whisper_compute_type,
                   settings.decoding_method)
            serving = b.start(None if settings.capacity_streams else
                              lambda b, key=key: capacity.probe(b, key))  # type: ignore[misc]
            await asyncio.to_thread(serving.wait)
        log.info("stt started", extra={"languages": {k: b.kind for k, b in backends.items()},
                                       "unavailable": sorted(problems)})
        follower = asyncio.create_task(admission.follow())
        yield
        follower.cancel()
        for b in backends.values():
            b.stop()

    app = FastAPI(title="jbcalling stt", version=settings.version, lifespan=lifespan)
    app.state.backends = backends

    def check(lang: str, sample_rate: int) -> Backend:
        if lang not in (*LANGUAGES, "auto"):
            raise Close("unsupported_language", 1008, f"unsupported language {lang!r}; use one "
                        f"of {', '.join(LANGUAGES)} or auto (detect each utterance's)")
        backend = backends.get(lang)
        if backend is None:
            raise Close("model_missing", 1011, problems.get(lang, f"{lang} is not configured"))
        if sample_rate != 16000:
            raise Close("bad_sample_rate", 1003,
                        f"sample_rate {sample_rate}: send PCM s16le mono at 16000 Hz")
        limit = capacity.streams
        if sum(b.taking_audio for b in backends.values()) >= limit:
            raise Close("busy", 1013, f"at capacity: this instance recognizes {limit} stream(s) "
                        "in real time and has as many open; try another instance or later",
                        capacity_streams=limit)
        return backend

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket, lang: str = "", sample_rate: int = 16000,
                     from_pause: bool = False) -> None:
        await ws.accept()
        try:
            backend = check(lang, sample_rate)
        except Close as exc:
            await refuse(ws, exc)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Item] = asyncio.Queue()

        def put(item: Item) -> None:
            # Partials are droppable when the client reads slowly; finals and errors are not.
            if isinstance(item, Result) and item.type == "partial" and \
                    queue.qsize() >= MAX_QUEUED_RESULTS:
                return
            if isinstance(item, Notice):  # one skipped per skip: the next after its resumed
                if item.type == "skipped" and session.behind:
                    return
                session.behind = item.type == "skipped"
            queue.put_nowait(item)

        def emit(item: Item) -> None:
            loop.call_soon_threadsafe(put, item)

        handle = backend.open(emit, from_pause)
        session = admission.admit(handle)
        sender = asyncio.create_task(send_results(ws, queue, lang))
        await ws.send_json({"type": "ready", "lang": lang, "backend": backend.kind,
                            "model": backend.model, "sample_rate": 16000,
                            "max_session_s": settings.max_session_s,
                            "idle_timeout_s": settings.idle_timeout_s})
        try:
            await receive_audio(ws, backend, session, put, sender, lang)
        except SessionOver as over:
            limited.labels(over.reason).inc()
            log.info("stream closed at a session limit", extra={"reason": over.reason})
            backend.close(handle)
            with contextlib.suppress(Exception):  # the client may be gone already
                await sender  # the last final first
                await ws.send_json({"type": "closed", "reason": over.reason,
                                    "message": over.message})
                await ws.close(1000, over.reason)
        except Close as exc:
            backend.close(handle)
            sender.cancel()
            await refuse(ws, exc)
        except WebSocketDisconnect:
            backend.close(handle)
        finally:
            backend.close(handle)
            admission.leave(handle)
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def receive_audio(ws: WebSocket, backend: Backend, session: Session, put: Any,
                            sender: asyncio.Task[None], lang: str) -> None:
        handle = session.handle
        left = int(settings.max_session_s * 16000) * 2  # bytes of audio this stream may still take
        while True:
            if session.shed:
                limit = capacity.streams
                raise Close("busy", 1013, f"over capacity: this instance falls behind (it now "
                            f"admits {limit} stream(s)) and this is its newest talking stream; "
                            "try another instance or later",
                            capacity_streams=limit)
            try:
                msg = await asyncio.wait_for(ws.receive(), settings.idle_timeout_s)
            except TimeoutError:
                raise SessionOver("idle", f"no audio for {settings.idle_timeout_s:g} s; open a "
                                  "new stream to go on") from None
            if msg["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(msg.get("code", 1000))
            data, text = msg.get("bytes"), msg.get("text")
            if data is not None:
                if len(data) > settings.max_frame_bytes:
                    raise Close("frame_too_large", 1009, f"frame of {len(data)} bytes; at most "
                                f"{settings.max_frame_bytes}")
                if len(data) % 2:
                    raise Close("odd_length", 1003, f"frame of {len(data)} bytes: PCM s16le "
                                "frames have an even number of bytes")
                data = data[:left]  # a frame over the session's length is cut at it
                left -= len(data)
                received.labels(lang).inc(len(data) / 32000)
                lost = backend.feed(handle, data)
                if lost:  # fell behind: what waited is dropped, counted, said, logged
                    dropped.labels(lang, "backlog").inc(lost)
                    if not session.behind:  # the first drop of a skip (the worker may still
                        # hold more than the limit: each frame meanwhile is dropped too)
                        log.warning("stream fell behind; dropped what waited, resuming at the "
                                    "next pause", extra={"lang": lang, "dropped_s": round(lost, 2)})
                    put(Notice("skipped", dropped_s=round(lost, 2)))
                if left <= 0:
                    raise SessionOver("max_length", f"this stream reached its "
                                      f"{settings.max_session_s:g} s of audio; open a new one")
            elif text is not None:
                try:
                    control = json.loads(text)
                except ValueError:
                    control = None
                if not isinstance(control, dict) or control.get("type") != "end":
                    raise Close("text_frame", 1003, 'send audio as binary frames; the only text '
                                'message is {"type": "end"}')
                backend.close(handle)
                await sender  # the last final, then the server closes
                await ws.close(1000)
                return

    async def send_results(ws: WebSocket, queue: asyncio.Queue[Item], lang: str) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                await refuse(ws, Close("recognizer_failed", 1011, str(item)))
                return
            await ws.send_json(item.to_json())
            if isinstance(item, Result):
                results.labels(lang, item.type).inc()
            elif item.type == "resumed":
                dropped.labels(lang, "to_pause").inc(item.skipped_s)

    async def refuse(ws: WebSocket, exc: Close) -> None:
        refused.labels(exc.code).inc()
        log.info("stream closed on an error", extra={"code": exc.code, "reason": exc.message})
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "code": exc.code, "message": exc.message,
                                    **exc.extra})
                await ws.close(exc.close_code, exc.message[:120])

    async def probe() -> health.Readiness:
        checks = {lang: f"ok: {b.kind} {b.model}" + (" (stand-in)" if b.standin else "")
                  for lang, b in backends.items()}
        checks.update(problems)
        streams = {lang: b.active for lang, b in backends.items()}
        load = {"streams": sum(streams.values()), "max_sessions": settings.max_sessions,
                "active_streams": sum(streams.values()), "capacity_streams": capacity.streams,
                "capacity_source": capacity.source, "capacity_real_time_factor": {
                    lang: round(rtf, 4) for lang, rtf in capacity.rtf.items()},
                "capacity_start_streams": capacity.start_streams,
                "observed_real_time_factor": None if capacity.observed_rtf is None
                else round(capacity.observed_rtf, 4),
                "lag_s": round(admission.lag_s(), 2),
                "per_language": streams,
                "real_time_factor": {lang: round(b.real_time_factor(), 4)
                                     for lang, b in backends.items()},
                "available": sorted(backends), "unavailable": sorted(problems)}
        return health.Readiness(bool(backends), checks, load)

    health.install(app, service="stt", version=settings.version, probe=probe, registry=registry)
    # stt's HTTP routes take no body (audio comes over the WebSocket, frames limited above)
    limits.install(app, HTTP_MAX_BODY_BYTES)
    return app


__all__ = ["MissingModel", "create_app"]
