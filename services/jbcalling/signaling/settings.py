"""The signaling service's one settings object (``JB_SIGNALING_*``)."""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from jbcalling.common.settings import ServiceSettings

# Per socket and message type: (burst, refill per second). What a page sends, at most: one
# media_offer + sdp per negotiation, retried with backoff from 0.5 s (docs/protocol.md), again
# at each media_reconnect (a loaded gateway missing its checks can cause several a minute);
# `speaking` at each change (on after 150 ms of voice, off after 900 ms of quiet: web/audio.js);
# a ping every 15 s; chat as fast as someone types and pastes (a burst of 5, then one in 2 s);
# reactions a burst of 5, then one a second. "other": unknown types and malformed messages.
WS_RATE_DEFAULTS: dict[str, tuple[float, float]] = {
    "media_offer": (8, 0.5), "sdp": (8, 0.5), "ice": (20, 2.0), "speaking": (6, 2.0),
    "settings": (10, 1.0), "ping": (4, 0.5), "mute": (10, 1.0), "remove": (10, 1.0),
    "end": (2, 0.1), "chat": (5, 0.5), "hand": (6, 1.0), "react": (5, 1.0), "lock": (6, 0.5),
    "admit": (20, 2.0), "video_visibility": (10, 2.0), "other": (5, 0.5)}


# What a participant is told when they ask for "I speak: detect" and it is off (speak_auto).
DETECT_UNAVAILABLE = ("language detection is not enabled on this server: choose Tiếng Việt or "
                      "English (an operator enables it with the langid_model job variable)")


class SignalingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JB_SIGNALING_")

    redis_url: str = Field("redis://127.0.0.1:6379/0",
                           description="Redis holding room state, captions and transcripts.")
    redis_timeout_s: float = Field(1.0, gt=0, description="Timeout of each Redis call, seconds.")
    jwt_secret: SecretStr = Field(SecretStr(""), description="HMAC key of participant tokens "
                                  "(>= 32 characters; from Nomad Variables, never a job file).")
    token_ttl_s: int = Field(4 * 3600, ge=60, description="Lifetime of a participant token.")
    speak_auto: bool = Field(False, description="Offer \"I speak: detect\" (speak=auto): set "
                             "when stt has a language-ID model (JB_STT_LANGID_MODEL); off, "
                             "speak=auto is refused with a clear error.")
    public_url: str = Field("", description="Public origin (https://call.example), for join links "
                            "and the WebSocket Origin check; empty: the origin the request came to.")
    allowed_origins: list[str] = Field(default_factory=list,
                                       description="WebSocket Origins allowed besides public_url.")
    max_participants: int = Field(6, ge=2, le=50, description="Participants per room.")
    room_idle_s: int = Field(3600, ge=1, description="A room with no activity this long closes.")
    ws_max_message_bytes: int = Field(64 * 1024, ge=1024, description="Largest WebSocket message.")
    rate_create_per_min: int = Field(10, ge=1, description="Room creations per client per minute.")
    rate_join_per_min: int = Field(30, ge=1, description="Joins per client per minute.")
    rate_renew_per_min: int = Field(30, ge=1, description="Token renewals per client per minute.")
    rate_room_media_per_min: int = Field(60, ge=1, description="media_offer and sdp messages "
                                         "of all of a room's sockets together, per minute.")
    rate_room_events_per_min: int = Field(600, ge=1, description="Messages that reach the whole "
                                          "room (speaking, settings, mute, remove, end, chat, "
                                          "hand, react, lock, admit) of all of a room's sockets "
                                          "together, per minute.")
    rate_wait_per_min: int = Field(120, ge=1, description="Polls of a waiting joiner's state "
                                   "(GET /api/rooms/{id}/waiting) per client per minute.")
    chat_max_chars: int = Field(1000, ge=1, le=10000, description="Longest chat message, "
                                "characters.")
    chat_translate_timeout_s: float = Field(8.0, gt=0, description="How long a chat message "
                                            "waits for its translation before it is shown "
                                            "untranslated, seconds.")
    mt_url: str = Field("", description="mt base URL, to translate chat; empty: a healthy `mt` "
                        "instance from Consul.")
    waiting_ttl_s: int = Field(900, ge=30, description="How long a joiner may wait in a locked "
                               "room's lobby before the request lapses, seconds.")
    ws_rate_limits: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(WS_RATE_DEFAULTS),
        description="Per socket and message type: [burst, refill per second] (JSON object; "
                    "types left out keep their default). An excess message is refused with "
                    "error `rate_limited`.")
    ws_rate_strikes: int = Field(20, ge=1, description="Refused messages a socket may send in a "
                                 "burst (one more allowed per second) before it is closed "
                                 "with code 4008.")
    stun_urls: list[str] = Field(default_factory=list, description="STUN URLs handed to clients.")
    turn_urls: list[str] = Field(default_factory=list, description="TURN URLs handed to clients.")
    turn_secret: SecretStr = Field(SecretStr(""), description="TURN REST API shared secret "
                                   "(coturn static-auth-secret); empty: no TURN credentials.")
    turn_ttl_s: int = Field(6 * 3600, ge=60, description="Lifetime of TURN credentials.")

    consul_http_addr: str = Field("http://127.0.0.1:8500", description="Consul, to find gateways.")
    gateway_url: str = Field("", description="A fixed media gateway URL; empty: healthy "
                             "`gateway` instances from Consul, one per room (sticky).")
    gateway_watch_s: float = Field(1.0, gt=0, le=60, description="How often each replica asks "
                                   "its rooms' gateways whether they are the process the room "
                                   "negotiated with (restart detection), seconds.")
    gateway_fail_after: int = Field(2, ge=1, le=30, description="Unanswered checks after which "
                                    "a gateway counts as gone and its rooms' clients rejoin.")
    forwarded_allow_ips: list[str] = Field(["127.0.0.1"], description="Peers trusted to say "
                                           "the client's address and scheme (X-Forwarded-For, "
                                           "-Proto): the ingress's addresses (JSON list; CIDRs "
                                           "allowed). Rate limits count per client address.")
    gateway_token: SecretStr = Field(SecretStr(""), description="Token the gateway expects "
                                     "(X-JB-Gateway-Token), from Nomad Variables.")

    @field_validator("ws_rate_limits")
    @classmethod
    def _every_type(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        unknown = set(value) - set(WS_RATE_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown message types {sorted(unknown)}; known: "
                             f"{sorted(WS_RATE_DEFAULTS)}")
        if any(burst < 1 or per_s <= 0 for burst, per_s in value.values()):
            raise ValueError("each limit is [burst >= 1, refill per second > 0]")
        return {**WS_RATE_DEFAULTS, **value}

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters; generate one with "
                             "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        return value
