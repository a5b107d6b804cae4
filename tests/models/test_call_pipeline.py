"""One spoken sentence through the whole call, with every part real: a jb-gateway process, the
signaling app, the stt (VAD + Whisper tiny.en), mt (stand-in OPUS-MT) and tts (joe voice)
services over their own APIs, real Redis, real aiortc participants on loopback.

A speaks English. B wants captions in Vietnamese and hears the translation; C wants English
captions. Both see partial then final captions with A's words and the translation; B's speech
track carries translated speech; the transcript has the sentence.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from gateway_process import start_gateway, stop_gateway
from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
from jbcalling.common.audio import resample_to_48k
from jbcalling.mt.app import create_app as create_mt
from jbcalling.mt.settings import MtSettings
from jbcalling.signaling.app import create_app as create_signaling
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.speech.layout import DEV_MT, DEV_VOICES, DEV_WHISPER_EN
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.app import create_app as create_tts
from jbcalling.tts.settings import TtsSettings
from speech_fixtures import models_dir, wer  # noqa: F401

pytestmark = pytest.mark.models
SENTENCE = "Please send me the report before the meeting tomorrow."



def test_an_english_sentence_reaches_both_listeners(models_dir: Path, redis_url: str,  # noqa: F811
                                                    serve: Any, tmp_path: Path,
                                                    loopback_ice: None) -> None:
    stt = create_stt(SttSettings(models_dir=models_dir, languages={
        "en": f"vad-whisper:{DEV_WHISPER_EN}"}))
    mt = create_mt(MtSettings(models_dir=models_dir, pairs=DEV_MT, beam_size=1,
                              max_decoding_length=12, redis_url=redis_url))
    tts = create_tts(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))
    with serve(stt) as s_stt, serve(mt) as s_mt, serve(tts) as s_tts:
        speech = httpx.post(s_tts.url + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                            timeout=30)
        assert speech.status_code == 200
        utterance = resample_to_48k(speech.content, int(speech.headers["X-Sample-Rate"]))
        proc, gateway = start_gateway(redis_url, tmp_path / "gateway.log",
                                      urls={"stt": s_stt.url, "mt": s_mt.url, "tts": s_tts.url})
        try:
            settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40,
                                         gateway_url=gateway)
            with serve(create_signaling(settings)) as sig:
                result = asyncio.run(_call(sig.url, gateway, utterance))
        finally:
            stop_gateway(proc)
    b, c, b_peer, transcript = result
    for events in (b, c):
        captions = [e for e in events if e["type"] == "caption"]
        kinds = [e["kind"] for e in captions]
        assert "partial" in kinds and "final" in kinds and "translation" in kinds, kinds
        assert kinds.index("partial") < kinds.index("final") < kinds.index("translation")
        final = next(e for e in captions if e["kind"] == "final")
        assert final["lang"] == "en" and final["speaker_name"] == "An"
        assert wer(SENTENCE, final["text"]) <= 0.2, final["text"]
        translation = next(e for e in captions if e["kind"] == "translation")
        assert translation["translations"]["vi"] and "translation_error" not in translation
        assert translation["segment"] == final["segment"]
    assert any(e["type"] == "speech" and e["lang"] == "vi" for e in b)
    spoken = [(e["duration_ms"], e["peak"]) for e in b if e["type"] == "speech"]
    assert b_peer["loud_speech_frames"] > 10, (b_peer, spoken)  # speech on B's speech track
    assert "An (en):" in transcript


async def _call(signaling: str, gateway: str, utterance: bytes) -> tuple[Any, ...]:
    async with httpx.AsyncClient(timeout=10) as http:
        room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
        prefs = {"An": ("en", "en", False), "Binh": ("vi", "vi", True), "Cara": ("en", "en", False)}
        people = {}
        for name, (speak, captions, hear) in prefs.items():
            people[name] = (await http.post(f"{signaling}/api/rooms/{room}/join", json={
                "name": name, "speak": speak, "captions": captions,
                "hear_translation": hear})).json()
    ws_url = signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
    mic = PcmTrack()
    peers = {n: SyntheticPeer(gateway, room, p["participant_id"], audio=mic if n == "An" else None)
             for n, p in people.items()}
    events: dict[str, list[dict[str, Any]]] = {"Binh": [], "Cara": []}
    async with connect(ws_url + people["An"]["token"]) as wa, \
            connect(ws_url + people["Binh"]["token"]) as wb, \
            connect(ws_url + people["Cara"]["token"]) as wc:
        for name, ws in (("An", wa), ("Binh", wb), ("Cara", wc)):
            events.setdefault(name, []).extend(await negotiate_over_signaling(peers[name], ws))
        await asyncio.sleep(1.0)
        mic.play(utterance + bytes(48000 * 2 * 2))  # the sentence, then 2 s of silence

        async def listen(name: str, ws: Any) -> None:
            async for raw in ws:
                msg = json.loads(raw)
                events[name].append(msg)
                if msg["type"] == "speech" or (name == "Cara" and msg.get("kind") == "translation"):
                    return

        await asyncio.wait_for(asyncio.gather(listen("Binh", wb), listen("Cara", wc)), 60)
        binh = peers["Binh"]
        deadline = time.monotonic() + 15  # let the translated speech play and arrive
        while binh.loud[binh.speech_mid] <= 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        loud = binh.loud[binh.speech_mid]
        async with httpx.AsyncClient(timeout=10) as http:
            transcript = (await http.get(f"{signaling}/api/rooms/{room}/transcript",
                                         headers={"Authorization":
                                                  f"Bearer {people['Cara']['token']}"})).text
        for p in peers.values():
            await p.close()
    return events["Binh"], events["Cara"], {"loud_speech_frames": loud, "loud": dict(binh.loud),
                                            "frames": dict(binh.frames),
                                            "speech_mid": binh.speech_mid}, transcript

