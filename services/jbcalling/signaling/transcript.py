"""A room's transcript: final segments and chat messages in a Redis stream, read back as txt,
vtt or json, in the order they were said or sent.

The gateway appends one entry per final segment (speaker, times, original, translation;
``protocol.append_segment``), signaling one per chat message (``kind`` "chat"; chat.py); the
signaling API reads them for the room's participants.
"""

from __future__ import annotations

from dataclasses import asdict

import redis.asyncio as aioredis

from jbcalling.common.protocol import Segment, room_key


async def read(redis: aioredis.Redis, room: str) -> list[Segment]:
    entries = await redis.xrange(room_key(room, "transcript")) or []
    return [Segment.parse(fields[b"seg"]) for _, fields in entries if fields]


def as_txt(segments: list[Segment]) -> str:
    lines = []
    for s in segments:
        said = "chat" if s.kind == "chat" else ""
        lines.append(f"[{_clock(s.start_ms, '.')[:-4]}] {s.speaker} ({s.lang}{', ' if said else ''}"
                     f"{said}): {s.text}")
        if s.translation:
            lines.append(f"    ({s.translation_lang}) {s.translation}")
    return "\n".join(lines) + ("\n" if lines else "")


def as_vtt(segments: list[Segment]) -> str:
    out = ["WEBVTT", ""]
    for i, s in enumerate(segments, 1):
        out += [str(i), f"{_clock(s.start_ms, '.')} --> {_clock(max(s.end_ms, s.start_ms + 1), '.')}",
                f"<v {_vtt_escape(s.speaker)}>{'[chat] ' if s.kind == 'chat' else ''}"
                f"{_vtt_escape(s.text)}"]
        if s.translation:
            out.append(f"<i>{_vtt_escape(s.translation)}</i>")
        out.append("")
    return "\n".join(out)


def as_json(segments: list[Segment]) -> list[dict[str, object]]:
    return [asdict(s) for s in segments]


def _clock(ms: int, sep: str) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms_ = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms_:03d}"


def _vtt_escape(text: str) -> str:
    # Escaping ">" also keeps a cue from containing "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
