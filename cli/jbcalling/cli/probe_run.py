"""The synthetic call behind `jbctl probe`: speaker A plays a known English sentence (spoken by
the cluster's own tts), listener B (captions in Vietnamese, hears the translation) measures when
each stage reaches it. All times are the prober's own clock, so no clock is compared across
machines.

    first_partial_ms      first partial caption   - speech onset
    final_ms              final caption           - speech end
    translation_ms        translated caption      - speech end
    first_audio_ms        first loud frame on B's speech track - speech end
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from jbcalling.cli.errors import ServiceRefused
from jbcalling.common.protocol import read_error

SENTENCES = [
    "Please send me the report before the meeting tomorrow.",
    "We should start the project next week.",
    "Thank you for joining the call today.",
    "Can you hear me clearly now?",
    "The new office opens in March.",
]
STAGES = ("first_partial_ms", "final_ms", "translation_ms", "first_audio_ms")


@dataclass
class ProbeResult:
    utterances: list[dict[str, Any]] = field(default_factory=list)
    # caption events the listener received, by kind (a translation once per language it
    # carries): what the gateway's jb_caption_latency_seconds counted for this room
    captions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for stage in STAGES:
            values = sorted(u[stage] for u in self.utterances if u.get(stage) is not None)
            missing = sum(1 for u in self.utterances if u.get(stage) is None)
            out[stage] = {"n": len(values), "missing": missing,
                          "p50": round(statistics.median(values)) if values else None,
                          "p95": round(values[min(len(values) - 1, int(0.95 * len(values)))])
                          if values else None}
        return out


def _ok(resp: httpx.Response) -> httpx.Response:
    """``resp`` if it succeeded; else the service's error (every service answers one shape)."""
    if resp.status_code < 400:
        return resp
    try:
        body = resp.json()
    except ValueError:
        body = None
    code, message = read_error(body, f"http_{resp.status_code}", resp.reason_phrase)
    raise ServiceRefused(f"{resp.request.method} {resp.request.url} answered "
                         f"{resp.status_code} {code}: {message}",
                         hint="see that service's log (`jbctl logs <service>`)")


async def run_probe(signaling: str, tts: str, utterances: int, timeout_s: float,
                    say: Any, camera: bool = False) -> ProbeResult:
    from websockets.asyncio.client import connect

    from jbcalling.client import (
        PcmTrack,
        SyntheticPeer,
        ice_servers_of,
        negotiate_over_signaling,
    )
    from jbcalling.common.audio import resample_to_48k

    result = ProbeResult()
    async with httpx.AsyncClient(timeout=30) as http:
        clips = []
        for text in (SENTENCES * (utterances // len(SENTENCES) + 1))[:utterances]:
            resp = _ok(await http.post(tts + "/v1/synthesize", json={"lang": "en", "text": text}))
            clips.append((text, resample_to_48k(resp.content, int(resp.headers["X-Sample-Rate"]))))
        room = _ok(await http.post(signaling + "/api/rooms")).json()["room_id"]
        a = _ok(await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": "probe-speaker", "speak": "en", "captions": "en"})).json()
        b = _ok(await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": "probe-listener", "speak": "vi", "captions": "vi",
            "hear_translation": True})).json()
    ws_base = signaling.replace("http", "ws", 1) + f"/ws/rooms/{room}?token="
    mic = PcmTrack()
    pa = SyntheticPeer("", room, a["participant_id"], audio=mic, camera=camera,
                       ice_servers=ice_servers_of(a))
    pb = SyntheticPeer("", room, b["participant_id"], camera=camera, ice_servers=ice_servers_of(b))
    async with connect(ws_base + a["token"]) as wa, connect(ws_base + b["token"]) as wb:
        await negotiate_over_signaling(pa, wa)
        await negotiate_over_signaling(pb, wb)
        say(f"probe: room {room[:6]}… connected; playing {len(clips)} utterance(s)")
        await asyncio.sleep(1.0)
        events: list[tuple[float, dict[str, Any]]] = []

        async def listen() -> None:
            async for raw in wb:
                events.append((time.time(), json.loads(raw)))

        async def drain() -> None:
            # The speaker's socket must be read too: a client that stops reading stops answering
            # signaling's keepalive pings, is disconnected after ~40 s, and leaves the call.
            async for _ in wa:
                pass

        listener = asyncio.ensure_future(listen())
        drainer = asyncio.ensure_future(drain())
        try:
            for i, (text, pcm) in enumerate(clips):
                seen = {ev.get("segment") for _, ev in events}  # earlier utterances' segments
                onset = mic.play(pcm + bytes(48000 * 2 * 2))
                end = onset + len(pcm) / 96000
                deadline = end + timeout_s
                row: dict[str, Any] = {"utterance": i, "text": text}
                while time.time() < deadline:
                    await asyncio.sleep(0.05)
                    fresh = [(at, ev) for at, ev in events if ev.get("segment") not in seen]
                    _fill(row, fresh, onset, end)
                    spoken = [at for at, ev in fresh if ev.get("type") == "speech"]
                    loud = [t for t in pb.loud_at.get(pb.speech_mid, [])
                            if spoken and t >= spoken[0] - 0.5]
                    if loud and row.get("first_audio_ms") is None:
                        row["first_audio_ms"] = round((loud[0] - end) * 1000)
                    if all(row.get(s) is not None for s in STAGES):
                        break
                result.utterances.append(row)
                say(f"probe: utterance {i + 1}/{len(clips)}: " + ", ".join(
                    f"{s.removesuffix('_ms')} {row.get(s)} ms" for s in STAGES))
                # the next sentence starts once this one's translated speech has played: each
                # speech event says how long it plays from then (streamed: one per piece)
                ends = [at + ev.get("duration_ms", 0) / 1000 for at, ev in events
                        if ev.get("type") == "speech" and ev.get("segment") not in seen]
                await asyncio.sleep(1.0 + max([e - time.time() for e in ends] + [0.0]))
        finally:
            listener.cancel()
            drainer.cancel()
            for _, ev in events:
                if ev.get("type") == "caption":
                    n = len(ev.get("translations") or {}) if ev["kind"] == "translation" else 1
                    result.captions[ev["kind"]] = result.captions.get(ev["kind"], 0) + n
            await pa.close()
            await pb.close()
    return result


def _fill(row: dict[str, Any], events: list[tuple[float, dict[str, Any]]], onset: float,
          end: float) -> None:
    for at, ev in events:
        if ev.get("type") != "caption":
            continue
        if ev["kind"] == "partial" and row.get("first_partial_ms") is None:
            row["first_partial_ms"] = round((at - onset) * 1000)
        elif ev["kind"] == "final" and row.get("final_ms") is None:
            row["final_ms"] = round((at - end) * 1000)
            row["recognized"] = ev.get("text", "")
        elif ev["kind"] == "translation" and row.get("translation_ms") is None:
            if ev.get("translations"):
                row["translation_ms"] = round((at - end) * 1000)
            else:
                row["translation_error"] = ev.get("translation_error", "missing")
