"""The gateway's control API (called by signaling) and its health endpoints.

Caption latency is measured here, where every caption leaves the gateway: at publish time, the
wall-clock ms it was emitted minus the wall-clock ms its audio ended (protocol.Caption), observed
in ``jb_caption_latency_seconds`` by kind (partial, final, translation), the speaker's language
(``source``) and the language of the caption's text (``lang``). Prometheus's recording rules and
alerts read it (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from fastapi import FastAPI, Header, Request, Response
from prometheus_client import CollectorRegistry, Histogram
from pydantic import BaseModel, Field, ValidationError

from jbcalling.common import health, limits
from jbcalling.common.discovery import Discovery
from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import MAX_HIDDEN_TILES, Caption, Event, events_channel
from jbcalling.gateway import counters, forward_stats, ice, rtp_forward
from jbcalling.gateway.pipeline import Pipeline
from jbcalling.gateway.settings import GatewaySettings
from jbcalling.gateway.sfu import Sfu
from jbcalling.gateway.tap import Taps

log = logging.getLogger("jbcalling.gateway")
ID = r"^[A-Za-z0-9_-]{6,64}$"
SDP_MAX_CHARS = 200_000
# the answer's SDP is ASCII: its JSON body is its length plus escapes of its line ends
MAX_BODY_BYTES = 256 * 1024


class Answer(BaseModel):
    sdp: str = Field(min_length=10, max_length=SDP_MAX_CHARS)


class MuteState(BaseModel):
    muted: bool = Field(description="true: the participant's audio is neither forwarded nor "
                        "recognised until a later false.")


class Visibility(BaseModel):
    hidden: list[Annotated[str, Field(pattern=ID)]] = Field(
        max_length=MAX_HIDDEN_TILES, description="Participants whose tiles this participant's "
        "page does not show: their video is not forwarded to it until a later list leaves them "
        "out.")


class Offer(BaseModel):
    type: str = "offer"
    sdp: str = Field(description="The gateway's offer, candidates inside (no trickle ICE).")
    boot: str = Field(description="This gateway process's boot id (it changes on a restart).")


def create_app(settings: GatewaySettings) -> FastAPI:
    rtp_forward.install()
    ice.use_host_addresses(settings.ice_addresses)
    registry = CollectorRegistry()
    # Up to 10 s: a caption later than that is useless on screen; the 1.5 s alert bound between.
    caption_latency = Histogram(
        "jb_caption_latency_seconds", "Caption published, seconds after the end of its audio",
        ["kind", "source", "lang"], registry=registry,
        buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0))
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2)
    state: dict[str, Any] = {}
    # This process's identity: signaling compares it to the one it negotiated with, so that a
    # restarted gateway (same address, no peers) is noticed and the room's clients rejoin.
    boot = uuid.uuid4().hex

    async def publish(room: str, event: Event) -> None:
        if isinstance(event, Caption):
            observe_latency(event)
        try:
            await redis.publish(events_channel(room), event.to_json())
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cannot publish a room event: %s", exc)

    def observe_latency(caption: Caption) -> None:
        seconds = max(0, caption.emitted_ms - caption.audio_end_ms) / 1000
        if caption.kind != "translation":
            caption_latency.labels(caption.kind, caption.lang, caption.lang).observe(seconds)
            return
        for lang in caption.translations or {}:  # a failed translation carries no text
            caption_latency.labels("translation", caption.lang, lang).observe(seconds)

    def consume(room: str, pid: str, pcm: bytes) -> None:
        pipeline = state.get("pipeline")
        if pipeline is not None:  # (a muted participant's audio never reaches here: sfu.py)
            pipeline.audio(room, pid, pcm)

    sfu = Sfu(settings.max_rooms, settings.max_peers, publish,
              lambda room, pid, frame: state["taps"].feed(room, pid, frame),
              settings.pacing_burst, settings.pacing_factor)

    discovery = Discovery(settings.consul_http_addr, {
        "stt": settings.stt_url, "mt": settings.mt_url, "tts": settings.tts_url})

    async def peer_gone(room: str, pid: str) -> None:
        # a failed or closed peer connection must not keep its speaker's stt session open
        state["taps"].forget(room, pid)
        await state["pipeline"].stop(room, pid)

    sfu.on_leave = peer_gone

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["taps"] = Taps(consume)
        state["pipeline"] = Pipeline(discovery, redis, publish, sfu.speech_targets, registry,
                                     settings.stt_talk_level_dbfs, settings.stt_quiet_close_s)
        log.info("gateway started", extra={"version": settings.version})
        yield
        await sfu.close()
        await state["pipeline"].close()
        await redis.aclose()

    app = FastAPI(title="jbcalling gateway", version=settings.version, lifespan=lifespan)
    app.state.sfu = sfu
    app.state.state = state

    def _auth(token: str) -> None:
        # constant time: the comparison must not tell how much of a guess was right
        if settings.api_token and not hmac.compare_digest(token.encode(),
                                                          settings.api_token.encode()):
            raise ServiceError(401, "unauthorized", "bad gateway token")

    @app.post("/v1/rooms/{room}/peers/{pid}/offer")
    async def offer(room: str, pid: str, muted: bool = False,
                    x_jb_gateway_token: str = Header("")) -> Offer:
        _auth(x_jb_gateway_token)
        _ids(room, pid)
        sdp = await sfu.offer(room, pid, muted)  # GatewayFull answers 503 itself
        return Offer(sdp=ice.announce(sdp, settings.announced_ip), boot=boot)

    @app.get("/v1/instance")
    async def instance(x_jb_gateway_token: str = Header("")) -> dict[str, Any]:
        _auth(x_jb_gateway_token)
        return {"boot": boot, "rooms": len(sfu.rooms), "peers": sfu.peer_count}

    @app.post("/v1/rooms/{room}/peers/{pid}/answer", status_code=204)
    async def answer(room: str, pid: str, request: Request,
                     x_jb_gateway_token: str = Header("")) -> Response:
        _auth(x_jb_gateway_token)
        _ids(room, pid)
        # Parsed here: FastAPI answers 500 to a body that is not UTF-8.
        try:
            body = Answer.model_validate_json(await request.body())
        except (ValidationError, ValueError):
            raise ServiceError(422, "bad_body", 'send JSON {"sdp": "<the SDP answer>"}') from None
        if not sfu.has_peer(room, pid):
            raise ServiceError(404, "no_offer", "ask for an offer first")
        if not _fingerprinted(body.sdp):  # aiortc accepts it, then its DTLS task dies
            await sfu.leave(room, pid)
            raise ServiceError(400, "bad_sdp", "the answer has no DTLS fingerprint")
        try:
            await sfu.answer(room, pid, body.sdp)
        except KeyError:
            raise ServiceError(404, "no_offer", "ask for an offer first") from None
        # What aiortc raises on an answer it cannot apply (found by tests/fuzz); RuntimeError:
        # a StopIteration inside its parser.
        except (ValueError, AssertionError, AttributeError, IndexError, TypeError, RuntimeError,
                OperationError, InvalidAccessError, InvalidStateError) as exc:
            await sfu.leave(room, pid)
            raise ServiceError(400, "bad_sdp",
                               f"the answer is not valid SDP: {str(exc)[:200]}") from None
        return Response(status_code=204)

    @app.put("/v1/rooms/{room}/peers/{pid}/mute", status_code=204)
    async def mute(room: str, pid: str, body: MuteState,
                   x_jb_gateway_token: str = Header("")) -> Response:
        """Signaling's word on a participant's microphone (a host mute or their own switch)."""
        _auth(x_jb_gateway_token)
        _ids(room, pid)
        if sfu.mute(room, pid, body.muted) and body.muted:
            # what they said before the mute is not finished into captions after it
            state["taps"].forget(room, pid)
            await state["pipeline"].stop(room, pid)
        return Response(status_code=204)

    @app.put("/v1/rooms/{room}/peers/{pid}/visibility", status_code=204)
    async def visibility(room: str, pid: str, body: Visibility,
                         x_jb_gateway_token: str = Header("")) -> Response:
        """Signaling's word on which tiles a participant's page shows (docs/protocol.md,
        ``video_visibility``): the video of the others is paused for them."""
        _auth(x_jb_gateway_token)
        _ids(room, pid)
        if not sfu.set_hidden(room, pid, set(body.hidden)):
            raise ServiceError(404, "no_peer", "this participant has no media here: negotiate "
                               "first (the page sends its visibility after media_ready)")
        return Response(status_code=204)

    @app.delete("/v1/rooms/{room}/peers/{pid}", status_code=204)
    async def leave(room: str, pid: str, x_jb_gateway_token: str = Header("")) -> Response:
        _auth(x_jb_gateway_token)
        await sfu.leave(room, pid)
        state["taps"].forget(room, pid)
        await state["pipeline"].stop(room, pid)
        return Response(status_code=204)

    registry.register(counters.GatewayCollector(lambda: {
        "rooms": len(sfu.rooms), "peers": sfu.peer_count,
        "forwarded_video_frames": forward_stats.totals["video"]["sent_frames"],
        "video_paused_streams": sum(r.paused_streams() for r in sfu.rooms.values())}))

    async def probe() -> health.Readiness:
        load: dict[str, Any] = {"rooms": len(sfu.rooms), "peers": sfu.peer_count,
                "capacity": {"rooms": settings.max_rooms, "peers_per_room": settings.max_peers},
                "video_encoders_started": forward_stats.encoders_started["video"],
                "audio_encoders_started": forward_stats.encoders_started["audio"],
                "forwarded_video_frames": forward_stats.totals["video"]["sent_frames"],
                "muted_audio_frames_dropped": sfu.muted_frames_dropped,
                "video_paused_streams": sum(r.paused_streams() for r in sfu.rooms.values()),
                "speech_samples_played": sum(p.speech.samples_played for r in sfu.rooms.values()
                                             for p in r.peers.values())}
        try:
            await redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            return health.Readiness(False, {"redis": f"unreachable: {exc}"}, load)
        return health.Readiness(True, {"redis": "ok"}, load)

    health.install(app, service="gateway", version=settings.version, probe=probe,
                   registry=registry)
    limits.install(app, MAX_BODY_BYTES)
    return app


def _fingerprinted(sdp: str) -> bool:
    """Every m-section has a DTLS fingerprint, its own or the session's (tests/fuzz found
    answers that lack one where aiortc needs it). An answer aiortc cannot parse passes here:
    applying it reports the error."""
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception:
        return True
    return all(m.dtls is not None and m.dtls.fingerprints for m in parsed.media)


def _ids(room: str, pid: str) -> None:
    if not re.fullmatch(ID, room) or not re.fullmatch(ID, pid):
        raise ServiceError(400, "bad_id",
                           "room and participant ids are 6-64 characters of [A-Za-z0-9_-]")
