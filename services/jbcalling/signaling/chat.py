"""Chat: a participant's message, translated by mt into the other language, published to the
room and kept in its transcript stream in order with the captions.

The message is in the sender's spoken language (``speak``); each page shows it in its reader's
caption language, the original a click away. When mt is down or slow the message goes out
anyway, untranslated and marked so (``translation_error``), as captions degrade. The text is
personal data: never in a log message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import httpx

from jbcalling.common.discovery import Discovery, NoInstance
from jbcalling.common.protocol import Chat, Error, Participant, Segment, append_segment, other, room_key
from jbcalling.signaling.rooms import RoomStore

log = logging.getLogger("jbcalling.signaling.chat")


def clean(text: object, max_chars: int) -> tuple[str, Error | None]:
    """The message's text (trimmed; line breaks kept, other control characters refused), or the
    error to answer."""
    if not isinstance(text, str) or not text.strip():
        return "", Error(code="bad_message", message="chat: text is a non-empty string")
    text = text.strip()
    if len(text) > max_chars:
        return "", Error(code="too_long", message=f"chat: a message is {max_chars} characters "
                         f"at most (this one has {len(text)}): shorten it or send it in parts")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        return "", Error(code="bad_message", message="chat: text must be printable (line "
                         "breaks allowed)")
    return text, None


class ChatRelay:
    def __init__(self, store: RoomStore, discovery: Discovery, timeout_s: float) -> None:
        self.store = store
        self.discovery = discovery
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, room: str, sender: Participant, text: str) -> Chat:
        """Translate, publish and store one message; the published event."""
        sent_ms = int(time.time() * 1000)
        # one who speaks "auto" (detected per utterance) writes in the language they read
        source = sender.captions if sender.speak == "auto" else sender.speak
        target = other(source)
        translated, error = await self.translate(source, target, text)
        event = Chat(id=secrets.token_urlsafe(9), sender=sender.id, sender_name=sender.name,
                     lang=source, text=text, sent_ms=sent_ms,
                     translations={target: translated} if translated else {},
                     translation_error=error or None)
        await self.store.publish(room, event)
        at = await self._since_creation(room, sent_ms)
        await append_segment(self.store.redis, room, Segment(
            speaker=sender.name, speaker_id=sender.id, start_ms=at, end_ms=at, lang=source,
            text=text, translation=translated, translation_lang=target, kind="chat"))
        return event

    async def translate(self, source: str, target: str, text: str) -> tuple[str, str]:
        """(translation, "") or ("", why it is missing)."""
        try:
            url = await self.discovery.pick("mt")
            resp = await asyncio.wait_for(self.http.post(
                url + "/v1/translate", json={"source": source, "target": target, "texts": [text]}),
                self.timeout_s)
        except (NoInstance, httpx.HTTPError, TimeoutError) as exc:
            self.discovery.forget("mt")
            log.warning("chat translation unavailable", extra={"error": type(exc).__name__})
            return "", "unavailable"
        if resp.status_code != 200:
            return "", f"unavailable ({resp.status_code})"
        try:
            return str(resp.json()["translations"][0]), ""
        except (ValueError, KeyError, IndexError, TypeError):
            return "", "unavailable (bad answer)"

    async def _since_creation(self, room: str, now_ms: int) -> int:
        """Chat times in the transcript: ms from the room's creation."""
        raw = await self.store.redis.hget(room_key(room), "created")
        try:
            created_ms = int(float(raw) * 1000) if raw else now_ms
        except ValueError:
            created_ms = now_ms
        return max(0, now_ms - created_ms)
