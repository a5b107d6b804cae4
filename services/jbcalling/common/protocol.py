"""The contract between the services and the page: languages, the Redis key schema, the stored
records (Participant, transcript Segment), every room event, typed, and the error body of every
HTTP API.

Room events travel as JSON text with a ``type``: published on a room's Redis channel by
signaling or the gateway, forwarded by signaling to the room's sockets (only to the participant
named by ``to`` when it is set), or sent by signaling to one socket. docs/protocol.md describes
them; ``event_schema()`` is their JSON schema (``python -m jbcalling.common.protocol``), which
tests/unit/test_protocol.py checks against what the web client handles.

Redis keys of a room (all expire when the room is idle):

    jb:room:<id>               hash    created, host_key_hash, ended, locked
    jb:room:<id>:people        hash    participant id -> Participant JSON
    jb:room:<id>:banned        set     participant ids the host removed
    jb:room:<id>:events        pub/sub room events (this module's Event)
    jb:room:<id>:transcript    stream  one entry {"seg": Segment JSON} per final segment or chat
    jb:room:<id>:hands         zset    participant id -> when they raised their hand (the queue)
    jb:room:<id>:waiting       hash    request id -> a waiting joiner (signaling/waiting.py)
    jb:room:<id>:gateway       string  the gateway URL the room's media goes through
    jb:room:<id>:gateway_boot  string  the boot id of that gateway process
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, TypeAdapter

if TYPE_CHECKING:  # the client (jbcalling.client) needs no Redis
    import redis.asyncio as aioredis

Lang = Literal["vi", "en"]
LANGUAGES: tuple[Lang, ...] = ("en", "vi")
# What a participant speaks: a language, or "auto" (stt identifies each utterance's: captions
# then carry the detected language; stt/detecting.py).
Speaks = Literal["vi", "en", "auto"]

ROOM_PREFIX = "jb:room:"
EVENTS_PATTERN = "jb:room:*:events"  # every room's event channel
# renewed by a room's activity
ROOM_PARTS_WITH_TTL = ("", "people", "banned", "transcript", "hands", "waiting")
TRANSCRIPT_MAX_SEGMENTS = 20000
# The reactions a participant may send (``react``): a fixed list, shown briefly on their tile.
REACTIONS: tuple[str, ...] = ("👍", "👏", "😂", "❤️", "🎉", "😮")
# error codes of a media negotiation that a later attempt may not get (the gateway restarts)
RETRYABLE_MEDIA_ERRORS = frozenset({"gateway_unreachable", "no_gateway", "gateway_error",
                                    "no_offer"})
# ``video_visibility``: at most this many hidden tiles in one message (a room has far fewer)
MAX_HIDDEN_TILES = 64


def other(lang: str) -> Lang:
    """The language a caption in ``lang`` is translated into."""
    return next(x for x in LANGUAGES if x != lang)


def room_key(room: str, part: str = "") -> str:
    return f"{ROOM_PREFIX}{room}" + (f":{part}" if part else "")


def events_channel(room: str) -> str:
    return room_key(room, "events")


def room_of_channel(channel: str | bytes) -> str:
    """The room id of an events channel (``jb:room:<id>:events``)."""
    text = channel.decode() if isinstance(channel, bytes) else channel
    return text.removeprefix(ROOM_PREFIX).rsplit(":", 1)[0]


# ---- stored records ----------------------------------------------------------------------------

class ParticipantView(BaseModel):
    """A participant as the others see them (in events)."""

    id: str
    name: str  # personal data
    speak: Speaks
    captions: Lang
    hear_translation: bool
    role: Literal["host", "guest"]
    connected: bool = False
    muted: bool = False
    muted_by: str = ""  # who muted: the participant's own id, a host's id, "" when not muted


@dataclass
class Participant:
    """A participant as stored in ``jb:room:<id>:people``."""

    id: str
    name: str
    speak: Speaks
    captions: Lang
    hear_translation: bool
    role: Literal["host", "guest"]
    joined_at: float
    connected: bool = False
    muted: bool = False
    # The participant's own id (their switch), a host's id (a host mute: the gateway drops their
    # audio and only a host lifts it), "" when not muted.
    muted_by: str = ""

    @property
    def host_muted(self) -> bool:
        return self.muted and self.muted_by not in ("", self.id)

    def public(self) -> ParticipantView:
        return ParticipantView(**{k: v for k, v in asdict(self).items() if k != "joined_at"})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, raw: str | bytes) -> Participant:
        return cls(**json.loads(raw))


@dataclass
class Segment:
    """One final segment of a room's transcript (``jb:room:<id>:transcript``)."""

    speaker: str      # display name (personal data)
    speaker_id: str
    start_ms: int     # from the start of the speaker's stream
    end_ms: int
    lang: str
    text: str
    translation: str
    translation_lang: str
    # "speech": a final caption (times in the speaker's stream); "chat": a chat message (times
    # from the room's creation). Entries written before chat existed have no kind: speech.
    kind: str = "speech"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, raw: str | bytes) -> Segment:
        return cls(**json.loads(raw))


async def append_segment(redis: aioredis.Redis, room: str, seg: Segment) -> None:
    await redis.xadd(room_key(room, "transcript"), {"seg": seg.to_json()},
                     maxlen=TRANSCRIPT_MAX_SEGMENTS, approximate=True)


# ---- the error body of every service's HTTP API (jbcalling/common/errors.py answers it) ---------

class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every service answers with a status of 400 or more: ``{"error": {"code",
    "message"}}``, sometimes with more fields beside ``code`` (a limit, the supported values)."""

    error: ErrorDetail


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def read_error(body: Any, code: str, message: str) -> tuple[str, str]:
    """(code, message) of a service's error answer (``body``: its parsed JSON, or None);
    ``code`` and ``message`` where it has none."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or code), str(error.get("message") or message)
    return code, message


# ---- room events -------------------------------------------------------------------------------

class Event(BaseModel):
    """A room event. ``to_json`` is its wire form; ``parse`` reads any event back."""

    # fields left out of the wire form while they are None (present only in some events)
    omit_if_none: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        for name in self.omit_if_none:
            if out.get(name) is None:
                out.pop(name, None)
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


# presence, settings and host actions (signaling)
class Welcome(Event):
    """To a socket that connected: who it is, who is in the room, the raised hands in order and
    whether the room is locked."""

    type: Literal["welcome"] = "welcome"
    you: ParticipantView
    participants: list[ParticipantView]
    hands: list[str] = []
    locked: bool = False


class Joined(Event):
    """Someone took a seat (``POST /rooms/{id}/join``); their page has not connected yet."""

    type: Literal["joined"] = "joined"
    participant: ParticipantView


class Present(Event):
    """Someone's page connected."""

    type: Literal["present"] = "present"
    participant: ParticipantView


class SettingsChanged(Event):
    """Someone changed their languages, their translation choice or their microphone switch."""

    type: Literal["settings"] = "settings"
    participant: ParticipantView


class Left(Event):
    """Someone's page disconnected (their seat is kept a while for a reload)."""

    type: Literal["left"] = "left"
    participant: str


class Speaking(Event):
    type: Literal["speaking"] = "speaking"
    participant: str
    on: bool


class Muted(Event):
    """A host muted ``participant`` (``muted`` false: a host lifted that mute). While a host
    mute lasts the gateway neither forwards their audio nor recognises it, and only a host can
    lift it."""

    type: Literal["muted"] = "muted"
    participant: str
    by: str
    muted: bool = True


class Removed(Event):
    """The host removed ``participant``: their socket closes with 4001."""

    type: Literal["removed"] = "removed"
    participant: str
    by: str


class Ended(Event):
    """The host ended the room: every socket closes with 4002."""

    type: Literal["ended"] = "ended"
    by: str


class Pong(Event):
    type: Literal["pong"] = "pong"


# meeting features (signaling)
class Chat(Event):
    """A chat message of ``sender`` in ``lang`` (their spoken language), with its translation
    into the other language in ``translations``, or ``translation_error`` when mt failed (the
    page shows the original, marked untranslated). ``sent_ms``: wall-clock ms."""

    type: Literal["chat"] = "chat"
    omit_if_none: ClassVar[tuple[str, ...]] = ("translation_error",)
    id: str
    sender: str
    sender_name: str
    lang: Lang
    text: str  # personal data
    sent_ms: int
    translations: dict[str, str] = {}
    translation_error: str | None = None


class Hands(Event):
    """The raised hands, first raised first; ``by`` raised or lowered the hand that changed."""

    type: Literal["hands"] = "hands"
    queue: list[str]
    by: str


class Reaction(Event):
    """``participant`` sent ``emoji`` (one of ``REACTIONS``): shown briefly on their tile."""

    type: Literal["reaction"] = "reaction"
    participant: str
    emoji: str


class RoomLocked(Event):
    """A host locked the room (later joiners wait for a host) or unlocked it."""

    type: Literal["locked"] = "locked"
    locked: bool
    by: str


class WaitingPerson(BaseModel):
    id: str  # the request id
    name: str  # personal data
    speak: Speaks


class Waiting(Event):
    """Who waits in a locked room's lobby, oldest first (hosts admit or decline them)."""

    type: Literal["waiting"] = "waiting"
    waiting: list[WaitingPerson]


class Error(Event):
    """A message or negotiation that failed; docs/protocol.md lists the codes."""

    type: Literal["error"] = "error"
    code: str
    message: str


# media (signaling and the gateway)
class Sdp(Event):
    """The gateway's offer; the client answers with ``{"type": "sdp", "sdp": ...}``."""

    type: Literal["sdp"] = "sdp"
    kind: Literal["offer"] = "offer"
    sdp: str


class MediaReady(Event):
    type: Literal["media_ready"] = "media_ready"


class MediaSlot(BaseModel):
    participant: str
    audio_mid: str
    video_mid: str


class MediaSlots(Event):
    """Which participant each of ``to``'s receive slots carries."""

    type: Literal["media_slots"] = "media_slots"
    to: str
    slots: list[MediaSlot]


class MediaReconnect(Event):
    """The room's gateway restarted or went away: negotiate media again."""

    type: Literal["media_reconnect"] = "media_reconnect"
    reason: Literal["gateway_restarted", "gateway_unreachable"]
    retry_ms: int = 500
    message: str = "the media server restarted or went away: reconnecting audio and video"


# captions and speech (the gateway)
class Caption(Event):
    """A recognised segment (``kind`` partial or final) or its translation (``kind``
    translation, with ``translations``, or ``translation_error`` when mt failed). Times:
    ``start_ms``/``end_ms`` in the speaker's stt stream; ``audio_end_ms`` and ``emitted_ms``
    wall-clock ms, for latency."""

    type: Literal["caption"] = "caption"
    omit_if_none: ClassVar[tuple[str, ...]] = ("translations", "translation_error")
    kind: Literal["partial", "final", "translation"]
    speaker: str
    speaker_name: str
    segment: str
    lang: str
    text: str
    start_ms: int
    end_ms: int
    audio_end_ms: int
    emitted_ms: int
    translations: dict[str, str] | None = None
    translation_error: str | None = None


class CaptionsStatus(Event):
    """Captions of ``speaker`` paused (stt unavailable, or busy: no stt instance has room for
    another stream) or back."""

    type: Literal["captions_status"] = "captions_status"
    state: Literal["unavailable", "busy", "available"]
    speaker: str
    message: str


class SpeechStatus(Event):
    """To a listener who asked for spoken translation: tts is unavailable."""

    type: Literal["speech_status"] = "speech_status"
    state: Literal["unavailable"] = "unavailable"
    to: str
    lang: str
    segment: str
    message: str = "spoken translation is unavailable right now; captions go on"


class Speech(Event):
    """Translated speech of ``segment`` is playing to ``listeners`` for the next
    ``duration_ms`` from ``emitted_ms``; a streamed translation sends one as its first sentence
    is queued and more as the rest comes (gateway/translated_speech.py)."""

    type: Literal["speech"] = "speech"
    segment: str
    speaker: str
    lang: str
    to: None = None
    listeners: list[str]
    emitted_ms: int
    audio_end_ms: int | None
    duration_ms: int
    peak: int


EVENTS: tuple[type[Event], ...] = (
    Welcome, Joined, Present, SettingsChanged, Left, Speaking, Muted, Removed, Ended, Pong, Error,
    Sdp, MediaReady, MediaSlots, MediaReconnect, Caption, CaptionsStatus, SpeechStatus, Speech,
    Chat, Hands, Reaction, RoomLocked, Waiting)
Publish = Callable[[str, Event], Awaitable[None]]  # (room, event): onto the room's channel
AnyEvent = Annotated[
    Welcome | Joined | Present | SettingsChanged | Left | Speaking | Muted | Removed | Ended
    | Pong | Error | Sdp | MediaReady | MediaSlots | MediaReconnect | Caption | CaptionsStatus
    | SpeechStatus | Speech | Chat | Hands | Reaction | RoomLocked | Waiting,
    Field(discriminator="type")]
_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


# ---- what a participant sends signaling on its WebSocket ---------------------------------------

class ClientMessage(BaseModel):
    """A participant's message; ``to_json`` is its wire form (the Python client sends these)."""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"))


class SettingsChange(BaseModel):
    """The settings a participant changes (each optional)."""

    speak: Speaks | None = None
    captions: Lang | None = None
    hear_translation: bool | None = None
    muted: bool | None = None  # the participant's own microphone switch, shown to the others


class ChangeSettings(ClientMessage):
    type: Literal["settings"] = "settings"
    settings: SettingsChange


class SpeakingNow(ClientMessage):
    type: Literal["speaking"] = "speaking"
    on: bool


class Ping(ClientMessage):
    """Keeps the socket and the room alive; answered with ``pong``."""

    type: Literal["ping"] = "ping"


class MediaOffer(ClientMessage):
    """Ask for the gateway's offer (again after ``media_reconnect``)."""

    type: Literal["media_offer"] = "media_offer"


class SdpAnswer(ClientMessage):
    """The complete answer, candidates inside."""

    type: Literal["sdp"] = "sdp"
    sdp: str


class Ice(ClientMessage):
    """Accepted and ignored: candidates travel inside the SDP (no trickle ICE)."""

    type: Literal["ice"] = "ice"


class Mute(ClientMessage):
    """Host only. ``muted`` false lifts a host mute (a participant's own mute is theirs)."""

    type: Literal["mute"] = "mute"
    target: str
    muted: bool = True


class Remove(ClientMessage):
    """Host only."""

    type: Literal["remove"] = "remove"
    target: str


class End(ClientMessage):
    """Host only: end the room for everyone."""

    type: Literal["end"] = "end"


class SendChat(ClientMessage):
    """A chat message (plain text; signaling's ``chat_max_chars`` at most)."""

    type: Literal["chat"] = "chat"
    text: str


class RaiseHand(ClientMessage):
    """Raise or lower one's own hand; a host lowers someone else's with ``target``."""

    type: Literal["hand"] = "hand"
    raised: bool = True
    target: str | None = None


class React(ClientMessage):
    """One of ``REACTIONS``."""

    type: Literal["react"] = "react"
    emoji: str


class Lock(ClientMessage):
    """Host only: lock the room (later joiners wait for a host) or unlock it."""

    type: Literal["lock"] = "lock"
    locked: bool = True


class Admit(ClientMessage):
    """Host only: let a waiting joiner in (``admit`` true) or decline them (final)."""

    type: Literal["admit"] = "admit"
    request: str
    admit: bool = True


class VideoVisibility(ClientMessage):
    """The participants whose tiles this page does not show (scrolled away, a background tab):
    the gateway pauses their video for this participant (audio goes on) and resumes it, with a
    keyframe, when a later message leaves them out. Sent when the set changes and after each
    ``media_ready`` (a new peer connection starts with every video flowing)."""

    type: Literal["video_visibility"] = "video_visibility"
    hidden: list[str] = Field(max_length=MAX_HIDDEN_TILES)


CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (
    ChangeSettings, SpeakingNow, Ping, MediaOffer, SdpAnswer, Ice, Mute, Remove, End, SendChat,
    RaiseHand, React, Lock, Admit, VideoVisibility)
HOST_ONLY = frozenset({"mute", "remove", "end", "lock", "admit"})


def client_message_types() -> set[str]:
    return {cls.model_fields["type"].default for cls in CLIENT_MESSAGES}


def parse(raw: str | bytes | dict[str, Any]) -> AnyEvent:
    """Any room event from its wire form; pydantic's ValidationError when it is none."""
    if isinstance(raw, dict):
        return _ADAPTER.validate_python(raw)
    return _ADAPTER.validate_json(raw)


def event_types() -> set[str]:
    return {cls.model_fields["type"].default for cls in EVENTS}


def event_schema() -> dict[str, Any]:
    """The JSON schema of every room event (one ``oneOf`` branch per type), and under
    ``client_messages`` the messages a participant sends."""
    schema = _ADAPTER.json_schema()
    clients: TypeAdapter[Any] = TypeAdapter(Annotated[
        ChangeSettings | SpeakingNow | Ping | MediaOffer | SdpAnswer | Ice | Mute | Remove | End
        | SendChat | RaiseHand | React | Lock | Admit | VideoVisibility,
        Field(discriminator="type")])
    schema["client_messages"] = clients.json_schema(ref_template="#/$defs/{model}")
    schema["$defs"] |= schema["client_messages"].pop("$defs")
    return schema


if __name__ == "__main__":
    print(json.dumps(event_schema(), indent=2))
