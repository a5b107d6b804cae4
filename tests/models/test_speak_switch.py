""""I speak" changed during the call, to "detect": the speaker's next utterances are captioned in
the language each is spoken in.

Every part real: a jb-gateway process, the signaling app, stt with both recognizers (Whisper
tiny.en; the Vietnamese stand-in behind Silero VAD) and the language-ID stand-in, mt and tts, real
Redis, real aiortc participants on loopback. An speaks English; after a ``settings`` message
saying ``speak: auto``, the gateway hands his stream over to one with ``lang=auto`` (the
production path: gateway/pipeline.py, stt/detecting.py), and his next utterances, English (joe)
then Vietnamese (espeak-ng), come back as English then Vietnamese captions, with no
reconnection of the media.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from gateway_process import start_gateway, stop_gateway
from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
from jbcalling.common.audio import resample_to_48k
from jbcalling.mt.app import create_app as create_mt
from jbcalling.mt.settings import MtSettings
from jbcalling.signaling.app import create_app as create_signaling
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.speech.layout import DEV_LANGID, DEV_MT, DEV_OFFLINE_VI, DEV_VOICES, DEV_WHISPER_EN
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.app import create_app as create_tts
from jbcalling.tts.settings import TtsSettings
from speech_fixtures import espeak_vi, models_dir, wer  # noqa: F401

pytestmark = pytest.mark.models
SENTENCE = "Please send me the report before the meeting tomorrow."


def test_changing_i_speak_to_detect_mid_call_captions_each_language(
        models_dir: Path, redis_url: str, serve: Any, tmp_path: Path,  # noqa: F811
        loopback_ice: None) -> None:
    stt = create_stt(SttSettings(models_dir=models_dir, threads=1, langid_model=DEV_LANGID,
                                 capacity_streams=4, languages={
        "en": f"vad-whisper:{DEV_WHISPER_EN}", "vi": f"vad-sherpa:{DEV_OFFLINE_VI}"}))
    mt = create_mt(MtSettings(models_dir=models_dir, pairs=DEV_MT, beam_size=1,
                              max_decoding_length=12, redis_url=redis_url))
    tts = create_tts(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))
    vi16k = espeak_vi("Hôm nay chúng ta họp về ngân sách của năm tới.", tmp_path)
    vietnamese = resample_to_48k(vi16k.astype(np.int16).tobytes(), 16000)
    with serve(stt) as s_stt, serve(mt) as s_mt, serve(tts) as s_tts:
        speech = httpx.post(s_tts.url + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                            timeout=30)
        english = resample_to_48k(speech.content, int(speech.headers["X-Sample-Rate"]))
        proc, gateway = start_gateway(redis_url, tmp_path / "gateway.log",
                                      urls={"stt": s_stt.url, "mt": s_mt.url, "tts": s_tts.url})
        try:
            settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40,
                                         gateway_url=gateway, speak_auto=True)
            with serve(create_signaling(settings)) as sig:
                finals, media_events = asyncio.run(_call(sig.url, gateway, english, vietnamese))
        finally:
            stop_gateway(proc)
    assert [f["lang"] for f in finals] == ["en", "en", "vi"], finals
    assert all(wer(SENTENCE, f["text"]) <= 0.2 for f in finals[:2]), finals
    # a new stt stream at the switch (segment ids carry the stream's epoch), then the same one
    epochs = [f["segment"].split(":")[0] for f in finals]
    assert epochs[0] != epochs[1] == epochs[2], epochs
    assert media_events == [], media_events  # no new offer or reconnection after the first


async def _call(signaling: str, gateway: str, english: bytes,
                vietnamese: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    async with httpx.AsyncClient(timeout=10) as http:
        room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
        people = {name: (await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": name, "speak": "en", "captions": captions})).json()
            for name, captions in (("An", "en"), ("Binh", "vi"))}
    ws_url = signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
    mic = PcmTrack()
    peers = {n: SyntheticPeer(gateway, room, p["participant_id"], audio=mic if n == "An" else None)
             for n, p in people.items()}
    finals: list[dict[str, Any]] = []
    media: list[str] = []
    async with connect(ws_url + people["An"]["token"]) as wa, \
            connect(ws_url + people["Binh"]["token"]) as wb:
        for name, ws in (("An", wa), ("Binh", wb)):
            await negotiate_over_signaling(peers[name], ws)

        async def listen() -> None:
            async for raw in wb:
                msg = json.loads(raw)
                if msg["type"] == "caption" and msg["kind"] == "final":
                    finals.append(msg)
                    return

        async def drain() -> None:  # An's own socket must be read too (keepalive pings)
            async for raw in wa:
                msg = json.loads(raw)
                if msg["type"] in ("media_ready", "media_reconnect", "sdp"):
                    media.append(msg["type"])

        drainer = asyncio.ensure_future(drain())
        await asyncio.sleep(1.0)
        mic.play(english + bytes(48000 * 2 * 2))
        await asyncio.wait_for(listen(), 60)
        await wa.send(json.dumps({"type": "settings", "settings": {"speak": "auto"}}))
        await asyncio.sleep(2.5)  # the stream checks the speaker's language every second
        for utterance in (english, vietnamese):
            mic.play(utterance + bytes(48000 * 2 * 2))
            await asyncio.wait_for(listen(), 60)
        drainer.cancel()
        for p in peers.values():
            await p.close()
    return finals, media
