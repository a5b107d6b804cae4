"""The data path of one spoken sentence, inside the gateway - the one place it is written down:

    speaker's Opus      -> tap.Taps: decoded once, 16 kHz mono s16le           (tap.py)
    -> TalkGate         -> does the participant talk? (level over 160 ms)  (speech_gate.py)
    -> SpeakerStream    -> stt ``WS /v1/stream?lang=<speaks>``, sticky per speaker, open while
                           they talk                                        (speaker_stream.py)
    -> partial          -> caption(kind=partial)  -> Redis room events -> signaling -> browsers
    -> final            -> caption(kind=final)    (the original, at once)
                        -> mt ``POST /v1/translate`` -> caption(kind=translation), transcript
                           (asked already at a *stable* partial, when its text is the final's)
                        -> tts ``POST /v1/synthesize``, streamed sentence by sentence
                           (translated_speech.py) -> SpeechTrack of each listener who hears
                           that language (speech_track.py)

stt's places go to people who talk, not to everyone whose audio is tapped: a participant's
stream opens when they talk (the level of their last 160 ms above ``stt_talk_level_dbfs``),
and the half second of audio before that is sent first so that the first word is whole; it
ends (``{"type": "end"}``, its last results still published) after ``stt_quiet_close_s``
without speech (a speaker pausing between sentences keeps it; a muted one, who sends nothing,
does not). A quiet participant's audio, beyond that half second, is dropped and counted
(``quiet``); a listener never talks, so takes no place and is never told anything about stt.

Degradations (the events: jbcalling/common/protocol.py, described in docs/protocol.md), said of
a participant who talks (a quiet one has no stream, so hears of stt when they start talking):
stt down -> a ``captions_status`` event with ``state: unavailable`` (repeated every
``STATUS_REPEAT_S`` for late joiners while it lasts), the call goes on, the speaker's newest
audio is kept, the stream reconnects (every 0.5 s at most while the speaker talks, backing off
to 5 s in silence; to a healthy instance or the one it used, which answers after a restart
before Consul says so) and ``state: available`` says captions are back (retried even once the
speaker is quiet, so that the room hears it; the stream of a quiet speaker then ends at once);
stt at capacity (every instance refused the stream with ``busy``, or the instance closed it with
``busy`` because it lags and this stream is among its newest) -> the same with ``state: busy``,
retried the same way, so captions start when an instance has room (admission:
docs/operations.md "Admission"); the stream fell behind (stt ``skipped``: it dropped what
waited and recognizes again from the next pause) -> ``state: busy`` until stt says
``resumed``, then ``available``; mt down -> the translation caption carries
``translation_error`` and no translation; tts down -> captions only, and a ``speech_status``
event (``state: unavailable``) to the listeners who asked to hear the translation.

Every caption carries wall-clock timestamps (ms) for latency measurement: ``audio_end_ms``
(the end of the utterance in the speaker's stream, as wall time) and ``emitted_ms``.

stt's session limits (stt/app.py): a stream takes at most ``max_session_s`` of audio. Before
that, between two utterances (or at the latest ``HANDOVER_LAST_S`` before it), the speaker's
stream hands over: the next chunk goes to a new stt stream, the old one gets ``{"type": "end"}``
and its last results are still published while it drains. Every chunk goes to exactly one
stream, so a long talk loses no caption. After an ``idle`` close the stream reopens when audio
comes again. A speaker who changes the language they speak (``settings``; the stream reads
the participant record every ``SPEAK_CHECK_S``) is handed over the same way, at once: the next
chunk goes to a stream in the new language.

Audio is dropped only where counted (``jb_gateway_audio_dropped_seconds_total{reason}``) and
said: the oldest audio held while no stream is open (reason ``unavailable``, ``busy``, or
``opening``: a stream being opened), what stt dropped when the stream fell behind (``backlog``,
stt's ``dropped_s``) and passed over to reach the next pause (``to_pause``); the room hears of
them by ``captions_status``, the log of each (at most every ``STATUS_REPEAT_S``). The audio of
a participant who does not talk is counted (``quiet``), neither said nor logged: it is not
speech. A stream opened after audio was dropped while it was wanted starts mid-speech: it is
opened with ``from_pause=1`` (stt recognizes from the first pause on), so that no caption comes
from a sentence cut at its start (the pause is the one stt's VAD finds: a stream that starts in
a sentence's last words may still caption the last of them; seen once in a test, "week.").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

from jbcalling.common.discovery import Discovery, NoInstance
from jbcalling.common.protocol import (
    Caption,
    Participant,
    Publish,
    Segment,
    append_segment,
    other,
    room_key,
)
from jbcalling.gateway.speaker_stream import QUIET_CLOSE_S, SpeakerStream
from jbcalling.gateway.speech_gate import TALK_LEVEL_DBFS, TalkGate
from jbcalling.gateway.speech_track import SpeechTrack
from jbcalling.gateway.stt_leg import now_ms
from jbcalling.gateway.translated_speech import TranslatedSpeech

log = logging.getLogger("jbcalling.gateway.pipeline")


class Pipeline:
    def __init__(self, discovery: Discovery, redis: aioredis.Redis, publish: Publish,
                 speech_targets: Callable[[str], dict[str, SpeechTrack]],
                 registry: CollectorRegistry | None = None,
                 talk_level_dbfs: float = TALK_LEVEL_DBFS,
                 quiet_close_s: float = QUIET_CLOSE_S) -> None:
        self.talk_level_dbfs, self.quiet_close_s = talk_level_dbfs, quiet_close_s
        registry = registry if registry is not None else CollectorRegistry()
        self.captions_busy = Counter("jb_gateway_captions_busy", "Speakers told their captions "
                                     "wait for stt capacity (captions_status busy)",
                                     registry=registry)
        self.audio_dropped = Counter("jb_gateway_audio_dropped_seconds", "Speakers' audio not "
                                     "recognized, by reason (unavailable, busy, opening, backlog, "
                                     "to_pause; quiet: not talking, no stream open)",
                                     ["reason"], registry=registry)
        self.discovery = discovery
        self.redis = redis
        self.publish = publish
        self.speech_targets = speech_targets
        self.streams: dict[tuple[str, str], SpeakerStream] = {}
        self.http = httpx.AsyncClient(timeout=10)
        self.speech = TranslatedSpeech(discovery, self.http, publish, self.people, speech_targets)
        self.background: set[asyncio.Future[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def audio(self, room: str, pid: str, pcm16k: bytes) -> None:
        """Called on the event loop with each chunk of a participant's 16 kHz audio."""
        stream = self.streams.get((room, pid))
        if stream is None:
            stream = self.streams[(room, pid)] = SpeakerStream(
                self, room, pid, TalkGate(self.talk_level_dbfs), self.quiet_close_s)
            stream.start()
        stream.push(pcm16k)

    async def stop(self, room: str, pid: str) -> None:
        stream = self.streams.pop((room, pid), None)
        if stream is not None:
            await stream.stop()

    async def close(self) -> None:
        for key in list(self.streams):
            await self.stop(*key)
        await self.http.aclose()

    async def people(self, room: str) -> dict[str, Participant]:
        raw = await self.redis.hgetall(room_key(room, "people"))
        return {(k.decode() if isinstance(k, bytes) else k): Participant.parse(v)
                for k, v in raw.items()}

    # ---- after a final result ---------------------------------------------------------------
    async def on_final(self, room: str, speaker: Participant | None, caption: Caption,
                       early: asyncio.Future[tuple[str, str]] | None = None) -> None:
        """``early``: the translation of a stable partial with the final's very text, already
        asked for before the final came."""
        source = caption.lang
        target = other(source)
        translated, error = await (early if early is not None
                                   else self.translate(source, target, caption.text))
        update = caption.model_copy(update={
            "kind": "translation", "emitted_ms": now_ms(),
            "translations": {target: translated} if translated else {},
            "translation_error": error or None})
        await self.publish(room, update)
        await self._transcript(room, speaker, caption, translated or "", target)
        if translated:
            await self.speech.speak(room, caption, target, translated)

    async def translate(self, source: str, target: str, text: str) -> tuple[str, str]:
        try:
            url = await self.discovery.pick("mt")
            resp = await self.http.post(url + "/v1/translate",
                                        json={"source": source, "target": target, "texts": [text]})
        except (NoInstance, httpx.HTTPError) as exc:
            self.discovery.forget("mt")
            log.warning("translation unavailable", extra={"error": str(exc)})
            return "", "unavailable"
        if resp.status_code != 200:
            return "", f"unavailable ({resp.status_code})"
        return str(resp.json()["translations"][0]), ""

    async def _transcript(self, room: str, speaker: Participant | None, caption: Caption,
                          translation: str, target: str) -> None:
        with contextlib.suppress(aioredis.RedisError, OSError):
            await append_segment(self.redis, room, Segment(
                speaker.name if speaker else "", caption.speaker, caption.start_ms,
                caption.end_ms, caption.lang, caption.text, translation, target))
