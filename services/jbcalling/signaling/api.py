"""The rooms REST API: create, join, token renewal, transcript.

The participant token travels in the ``Authorization: Bearer`` header on HTTP (never in a URL,
which ends up in logs and browser history; only the WebSocket, which cannot send headers from a
browser, takes it in its query). Renewal and transcript reads check, besides the token, that its
participant still holds a seat and is not banned: a removed participant's token is worth nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator

from jbcalling.common.errors import ServiceError
from jbcalling.common.protocol import Joined, Lang, Speaks
from jbcalling.signaling import metrics, tokens, transcript, turn
from jbcalling.signaling.ratelimit import RateLimiter
from jbcalling.signaling.rooms import RoomLocked, RoomStore, Standing
from jbcalling.signaling.settings import DETECT_UNAVAILABLE, SignalingSettings
from jbcalling.signaling.waiting import WaitingRoom

log = logging.getLogger("jbcalling.signaling.api")
ROOM_ID = r"[A-Za-z0-9_-]{22}"


class JoinRequest(BaseModel):
    name: str = Field(min_length=1, max_length=60, description="Display name.")
    speak: Speaks = Field(description="The language this participant speaks, or auto: "
                          "detected per utterance.")
    captions: Lang = Field(description="Captions (and speech) in this language.")
    hear_translation: bool = Field(False, description="Play the translation as speech.")
    host_key: str | None = Field(None, max_length=64, description="The key from room creation.")

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or any(not ch.isprintable() for ch in value):
            raise ValueError("a display name must be printable text")
        return value


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def router(settings: SignalingSettings, store: RoomStore, limiter: RateLimiter,
           lobby: WaitingRoom | None = None) -> APIRouter:
    api = APIRouter(prefix="/api")
    lobby = lobby or WaitingRoom(store, settings.waiting_ttl_s)
    secret = settings.jwt_secret.get_secret_value()

    async def _limit(action: str, request: Request, per_min: int) -> None:
        ok, retry = await limiter.allow(action, _client(request), per_min)
        if not ok:
            raise ServiceError(429, "rate_limited", f"too many {action} requests: retry in {retry} s",
                               headers={"Retry-After": str(retry)})

    @api.post("/rooms", status_code=201)
    async def create_room(request: Request) -> dict[str, str]:
        await _limit("create", request, settings.rate_create_per_min)
        room, host_key = await store.create()
        log.info("room created", extra={"personal": {"room": room}})
        if (m := metrics.of(request)) is not None:
            m.created.inc()
        base = settings.public_url or str(request.base_url)
        return {"room_id": room, "join_url": f"{base.rstrip('/')}/r/{room}",
                "host_key": host_key}

    @api.get("/config")
    async def config() -> dict[str, list[str]]:
        """What the page may offer: the languages one may speak ("auto": detected)."""
        return {"speak": ["vi", "en", *(["auto"] if settings.speak_auto else [])]}

    @api.post("/rooms/{room_id}/join", responses={202: {"description": "the room is locked: "
                                                        "wait for a host (docs/protocol.md)"}})
    async def join(room_id: str, body: JoinRequest, request: Request) -> Response:
        _check_room_id(room_id)
        await _limit("join", request, settings.rate_join_per_min)
        if body.speak == "auto" and not settings.speak_auto:
            raise ServiceError(400, "detect_unavailable", DETECT_UNAVAILABLE)
        try:
            person = await store.join(room_id, body.name, body.speak, body.captions,
                                      body.hear_translation, body.host_key)
        except RoomLocked:
            wait = await lobby.enqueue(room_id, body.name, body.speak, body.captions,
                                       body.hear_translation)
            log.info("joiner waiting", extra={"personal": {"room": room_id, "name": body.name}})
            return JSONResponse({
                "waiting": True, "request_id": wait.id, "poll_url": f"/api/rooms/{room_id}/waiting",
                "wait_token": tokens.issue_waiting(secret, room_id, wait.id,
                                                   settings.waiting_ttl_s)}, status_code=202)
        await store.publish(room_id, Joined(participant=person.public()))
        log.info("participant joined", extra={"personal": {"room": room_id, "name": person.name}})
        if (m := metrics.of(request)) is not None:
            m.joins.inc()
        return JSONResponse(_seated(room_id, person.id, person.role))

    @api.get("/rooms/{room_id}/waiting")
    async def waiting(room_id: str, request: Request,
                      authorization: Annotated[str, Header()] = "") -> dict[str, object]:
        """A waiting joiner's state: ``waiting``, ``declined`` (final), or ``admitted`` with
        what a join returns (token, ICE servers, WebSocket URL)."""
        _check_room_id(room_id)
        await _limit("wait", request, settings.rate_wait_per_min)
        try:
            request_id = tokens.verify_waiting(
                secret, authorization.removeprefix("Bearer ").strip(), room_id)
        except tokens.TokenError as exc:
            raise ServiceError(401, "unauthorized", "a waiting token is required in the "
                               f"Authorization header ({exc.reason}): join again") from None
        if not await store.exists(room_id):
            raise ServiceError(404, "room_not_found", "this room does not exist or has ended")
        req = await lobby.poll(room_id, request_id)
        if req is None:
            raise ServiceError(410, "request_lapsed", "you waited too long or the page stopped "
                               "asking: join again")
        if req.state == "admitted":
            if await store.standing(room_id, req.participant_id) is not Standing.MEMBER:
                raise ServiceError(410, "request_lapsed", "your seat was given up: join again")
            return {"state": "admitted", **_seated(room_id, req.participant_id, "guest")}
        return {"state": req.state}

    def _seated(room_id: str, pid: str, role: tokens.Role) -> dict[str, object]:
        """What a participant who got a seat receives."""
        return {
            "participant_id": pid, "role": role,
            "token": tokens.issue(secret, room_id, pid, role, settings.token_ttl_s),
            "expires_in": settings.token_ttl_s,
            "ice_servers": turn.ice_servers(settings.stun_urls, settings.turn_urls,
                                            settings.turn_secret.get_secret_value(), pid,
                                            settings.turn_ttl_s),
            "ws_url": f"/ws/rooms/{room_id}",
        }

    async def _member(room_id: str, request: Request, authorization: str) -> tokens.Claims:
        """The claims of the bearer token of a participant who still holds a seat."""
        if "token" in request.query_params:
            raise ServiceError(400, "token_in_url", "send the token in the Authorization header "
                               "(Bearer), never in the URL")
        bearer = authorization.removeprefix("Bearer ").strip()
        try:
            claims = tokens.verify(secret, bearer, room_id)
        except tokens.TokenError as exc:
            raise ServiceError(401, "unauthorized", "a participant token is required in the "
                               f"Authorization header ({exc.reason})") from None
        standing = await store.standing(room_id, claims.participant)
        if standing is Standing.REMOVED:
            raise ServiceError(403, "removed", "the host removed you from this room")
        if standing is not Standing.MEMBER:
            raise ServiceError(403, "not_in_room", "you no longer have a place in this room: "
                               "join it again")
        return claims

    @api.post("/rooms/{room_id}/token")
    async def renew_token(room_id: str, request: Request,
                          authorization: Annotated[str, Header()] = "") -> dict[str, object]:
        """A fresh token for a participant still in the room, in exchange for their current,
        not yet expired one (the page asks ahead of expiry: docs/protocol.md)."""
        _check_room_id(room_id)
        await _limit("renew", request, settings.rate_renew_per_min)
        claims = await _member(room_id, request, authorization)
        return {
            "token": tokens.issue(secret, room_id, claims.participant, claims.role,
                                  settings.token_ttl_s),
            "expires_in": settings.token_ttl_s,
            "ice_servers": turn.ice_servers(settings.stun_urls, settings.turn_urls,
                                            settings.turn_secret.get_secret_value(),
                                            claims.participant, settings.turn_ttl_s),
        }

    @api.get("/rooms/{room_id}/transcript", response_model=None, responses={200: {"content": {
        "text/plain": {}, "text/vtt": {}, "application/json": {}}}})
    async def get_transcript(room_id: str, request: Request,
                             format: Literal["txt", "vtt", "json"] = "txt",
                             authorization: Annotated[str, Header()] = "") -> Response:
        _check_room_id(room_id)
        await _member(room_id, request, authorization)
        segments = await transcript.read(store.redis, room_id)
        name = f"transcript-{room_id[:8]}.{format}"
        # nosniff: a browser must never run a transcript (participants' words) as HTML or script
        disposition = {"Content-Disposition": f'attachment; filename="{name}"',
                       "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        if format == "json":
            return JSONResponse({"room_id": room_id, "segments": transcript.as_json(segments)},
                                headers=disposition)
        if format == "vtt":
            return PlainTextResponse(transcript.as_vtt(segments), media_type="text/vtt",
                                     headers=disposition)
        return PlainTextResponse(transcript.as_txt(segments), headers=disposition)

    return api


def _check_room_id(room_id: str) -> None:
    if not re.fullmatch(ROOM_ID, room_id):
        raise ServiceError(404, "room_not_found", "no such room")
