"""A real two-person call through the fuzzed stack, placed once when the stack ends, after the
fuzz modules (conftest.py): An speaks English through a real aiortc peer, Binh (Vietnamese
captions) gets the partial, the final with An's words and its translation, and the transcript
has the sentence."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import connect

from fuzz.stack import Stack
from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
from jbcalling.common.audio import resample_to_48k
from speech_fixtures import wer

SENTENCE = "Please send me the report before the meeting tomorrow."


def assert_call_works(stack: Stack) -> None:
    """Needs this process's aiortc on loopback (``ice.use_host_addresses``)."""
    speech = httpx.post(stack.tts + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                        timeout=60)
    assert speech.status_code == 200, speech.text
    utterance = resample_to_48k(speech.content, int(speech.headers["X-Sample-Rate"]))
    events, transcript = asyncio.run(_call(stack, utterance))
    captions = [e for e in events if e["type"] == "caption"]
    kinds = [e["kind"] for e in captions]
    assert "partial" in kinds and "final" in kinds and "translation" in kinds, kinds
    final = next(e for e in captions if e["kind"] == "final")
    assert final["speaker_name"] == "An" and wer(SENTENCE, final["text"]) <= 0.3, final
    translation = next(e for e in captions if e["kind"] == "translation")
    assert translation["translations"]["vi"] and "translation_error" not in translation
    assert "An (en):" in transcript, transcript


async def _call(stack: Stack, utterance: bytes) -> tuple[list[dict[str, Any]], str]:
    signaling = stack.signaling
    async with httpx.AsyncClient(timeout=10) as http:
        room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
        people = {name: (await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": name, "speak": speak, "captions": captions})).json()
            for name, speak, captions in (("An", "en", "en"), ("Binh", "vi", "vi"))}
    ws_url = signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
    mic = PcmTrack()
    peers = {name: SyntheticPeer(stack.gateway, room, p["participant_id"],
                                 audio=mic if name == "An" else None)
             for name, p in people.items()}
    events: list[dict[str, Any]] = []
    try:
        async with connect(ws_url + people["An"]["token"]) as wa, \
                connect(ws_url + people["Binh"]["token"]) as wb:
            await negotiate_over_signaling(peers["An"], wa)
            events += await negotiate_over_signaling(peers["Binh"], wb)
            await asyncio.sleep(1.0)
            mic.play(utterance + bytes(48000 * 2 * 2))  # the sentence, then 2 s of silence

            async def listen() -> None:
                async for raw in wb:
                    events.append(json.loads(raw))
                    if events[-1]["type"] == "caption" and events[-1]["kind"] == "translation":
                        return

            await asyncio.wait_for(listen(), 60)
            async with httpx.AsyncClient(timeout=10) as http:
                transcript = (await http.get(
                    f"{signaling}/api/rooms/{room}/transcript",
                    headers={"Authorization": f"Bearer {people['Binh']['token']}"})).text
    finally:
        for peer in peers.values():
            await peer.close()
    return events, transcript
