"""The call degrades, it does not break (docs/protocol.md): with one speech service stopped, the others
and the media keep working, and the participants are told.

Real parts: a jb-gateway process, the signaling app, the stt (VAD + Whisper tiny.en), mt
(stand-in OPUS-MT) and tts (joe voice) services in real uvicorn servers, real Redis, real aiortc
participants on loopback. A speaks English; B wants Vietnamese captions and to hear them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from conftest import free_port
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
from room_events import wait_for
from speech_fixtures import models_dir, wer  # noqa: F401

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("loopback_ice")]
SENTENCE = "We should start the project next week."
Event = dict[str, Any]


def stt_app(models_dir: Path) -> Any:  # noqa: F811
    return create_stt(SttSettings(models_dir=models_dir,
                                  languages={"en": f"vad-whisper:{DEV_WHISPER_EN}"}))


def mt_app(models_dir: Path, redis_url: str) -> Any:  # noqa: F811
    return create_mt(MtSettings(models_dir=models_dir, pairs=DEV_MT, beam_size=1,
                                max_decoding_length=12, redis_url=redis_url))


def tts_app(models_dir: Path) -> Any:  # noqa: F811
    return create_tts(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))


def spoken(tts_url: str) -> bytes:
    speech = httpx.post(tts_url + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                        timeout=30)
    assert speech.status_code == 200
    return resample_to_48k(speech.content, int(speech.headers["X-Sample-Rate"]))


class Call:
    """A (speaks en) and B (vi captions, hears the translation) in one room; B's events are
    recorded as they come."""

    def __init__(self, signaling: str, gateway: str) -> None:
        self.signaling, self.gateway = signaling, gateway
        self.mic = PcmTrack()
        self.events: list[Event] = []
        self.sockets: list[ClientConnection] = []

    async def __aenter__(self) -> Call:
        async with httpx.AsyncClient(timeout=10) as http:
            self.room = (await http.post(self.signaling + "/api/rooms")).json()["room_id"]
            joined = [(await http.post(f"{self.signaling}/api/rooms/{self.room}/join", json={
                "name": name, "speak": speak, "captions": speak, "hear_translation": hear})).json()
                for name, speak, hear in (("An", "en", False), ("Binh", "vi", True))]
        self.token_b = joined[1]["token"]
        self.a = SyntheticPeer(self.gateway, self.room, joined[0]["participant_id"], audio=self.mic)
        self.b = SyntheticPeer(self.gateway, self.room, joined[1]["participant_id"])
        base = self.signaling.replace("http", "ws") + f"/ws/rooms/{self.room}?token="
        for peer, who in ((self.a, joined[0]), (self.b, joined[1])):
            ws = await connect(base + who["token"])
            self.sockets.append(ws)
            seen = await negotiate_over_signaling(peer, ws)
        self.events.extend(seen)
        # A's socket is read too: a client that stops reading is disconnected by keepalive
        self.listeners = [asyncio.ensure_future(self._listen(ws, keep))
                          for ws, keep in ((self.sockets[0], False), (self.sockets[1], True))]
        return self

    async def _listen(self, ws: ClientConnection, keep: bool) -> None:
        async for raw in ws:
            if keep:
                self.events.append(json.loads(raw))

    async def wait(self, pred: Callable[[Event], bool], timeout: float) -> Event | None:
        return await wait_for(self.events, pred, timeout)

    def from_a(self, kind: str) -> int:
        """Frames B received from A's slot of this kind."""
        kinds = self.b.kinds()
        return sum(n for mid, n in self.b.frames.items() if kinds.get(mid) == kind
                   and mid in self.b.slot_mids())

    async def transcript(self) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            return (await http.get(f"{self.signaling}/api/rooms/{self.room}/transcript",
                                   headers={"Authorization": f"Bearer {self.token_b}"})).text

    async def __aexit__(self, *_: object) -> None:
        for task in self.listeners:
            task.cancel()
        for ws in self.sockets:
            await ws.close()
        await self.a.close()
        await self.b.close()


def caption(kind: str) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "caption" and e["kind"] == kind


def run_call(redis_url: str, serve: Any, tmp_path: Path, urls: dict[str, str],
             scenario: Callable[[Call], Any]) -> Any:
    proc, gateway = start_gateway(redis_url, tmp_path / "gateway.log", urls=urls)
    try:
        settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40, gateway_url=gateway)
        with serve(create_signaling(settings)) as sig:
            async def go() -> Any:
                async with Call(sig.url, gateway) as call:
                    return await scenario(call)
            return asyncio.run(go())
    finally:
        stop_gateway(proc)


def stopped_url(serve: Any, app: Any) -> str:
    """The URL of a service that ran and was stopped (nothing listens there any more)."""
    with serve(app) as srv:
        url = srv.url
    return url


def test_mt_stopped_captions_arrive_marked_untranslated(models_dir: Path, redis_url: str,  # noqa: F811
                                                       serve: Any, tmp_path: Path) -> None:
    mt_url = stopped_url(serve, mt_app(models_dir, redis_url))
    with serve(stt_app(models_dir)) as stt, serve(tts_app(models_dir)) as tts:
        utterance = spoken(tts.url)

        async def en_streams() -> int:
            async with httpx.AsyncClient(timeout=5) as http:
                return int((await http.get(stt.url + "/ready")).json()["load"]["per_language"]["en"])

        async def scenario(call: Call) -> tuple[Event | None, Event | None, str, int, list[int]]:
            await asyncio.sleep(1.0)
            call.mic.play(utterance + bytes(48000 * 2 * 2))
            translation = await call.wait(caption("translation"), 40)
            final = await call.wait(caption("final"), 1)
            await asyncio.sleep(1.5)  # no speech may follow
            loud = call.b.loud[call.b.speech_mid]
            # A's peer connection ends without a word to signaling: the gateway notices and
            # closes A's stream to stt (it would hold an stt session for ever)
            streams = [await en_streams()]
            await call.a.pc.close()
            deadline = time.monotonic() + 20
            while streams[-1] and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                streams.append(await en_streams())
            return final, translation, await call.transcript(), loud, streams

        final, translation, transcript, loud, streams = run_call(
            redis_url, serve, tmp_path, {"stt": stt.url, "mt": mt_url, "tts": tts.url}, scenario)
    assert final is not None and wer(SENTENCE, final["text"]) <= 0.2, final
    assert translation is not None, "no translation caption at all"
    assert translation["translation_error"].startswith("unavailable"), translation
    assert translation["translations"] == {} and translation["segment"] == final["segment"]
    assert translation["text"] == final["text"]  # the original travels with it
    assert loud == 0  # nothing to speak
    assert "An (en):" in transcript
    assert streams[0] == 1 and streams[-1] == 0, streams


def test_tts_stopped_captions_only(models_dir: Path, redis_url: str, serve: Any,  # noqa: F811
                                   tmp_path: Path) -> None:
    with serve(tts_app(models_dir)) as tts:
        utterance = spoken(tts.url)
        tts_url = tts.url
    with serve(stt_app(models_dir)) as stt, serve(mt_app(models_dir, redis_url)) as mt:

        async def scenario(call: Call) -> tuple[Event | None, Event | None, list[Event], int]:
            await asyncio.sleep(1.0)
            call.mic.play(utterance + bytes(48000 * 2 * 2))
            translation = await call.wait(caption("translation"), 40)
            status = await call.wait(lambda e: e["type"] == "speech_status", 10)
            await asyncio.sleep(1.0)
            return translation, status, list(call.events), call.b.loud[call.b.speech_mid]

        translation, status, events, loud = run_call(
            redis_url, serve, tmp_path, {"stt": stt.url, "mt": mt.url, "tts": tts_url}, scenario)
    assert translation is not None and translation["translations"]["vi"], translation
    assert "translation_error" not in translation
    assert status is not None, [e["type"] for e in events]
    assert status["state"] == "unavailable" and status["lang"] == "vi" and status["message"]
    assert status["segment"] == translation["segment"]
    assert not [e for e in events if e["type"] == "speech"]
    assert loud == 0


def test_stt_stopped_the_call_goes_on_and_captions_resume(models_dir: Path,  # noqa: F811
                                                          redis_url: str, serve: Any,
                                                          tmp_path: Path) -> None:
    port = free_port()
    with serve(tts_app(models_dir)) as tts, serve(mt_app(models_dir, redis_url)) as mt:
        utterance = spoken(tts.url)
        stt_server = serve(stt_app(models_dir), port=port).__enter__()
        servers = [stt_server]
        stt_url = stt_server.url

        async def scenario(call: Call) -> dict[str, Any]:
            out: dict[str, Any] = {}
            await asyncio.sleep(1.5)
            await asyncio.to_thread(servers[0].__exit__)
            await asyncio.sleep(1.0)
            # A is quiet: he holds no stt stream, and nobody is told anything until he talks
            out["told_while_quiet"] = [e for e in call.events if e["type"] == "captions_status"]
            call.mic.play(utterance + bytes(48000 * 2 * 2))
            down = await call.wait(lambda e: e["type"] == "captions_status"
                                   and e["state"] == "unavailable", 20)
            out["down"] = down
            before = (call.from_a("video"), call.from_a("audio"))
            await asyncio.sleep(2.0)
            out["media_during_outage"] = (call.from_a("video") - before[0],
                                          call.from_a("audio") - before[1])
            servers.append(await asyncio.to_thread(serve(stt_app(models_dir), port=port).__enter__))
            out["up"] = await call.wait(lambda e: e["type"] == "captions_status"
                                        and e["state"] == "available", 20)
            # the sentence A said during the outage was told (unavailable); the one he says
            # now must be captioned whole (a fragment of the first may come before it: its
            # stream starts from the newest 3 s kept, at stt's first pause in them)
            start_ms = call.mic.play(utterance + bytes(48000 * 2 * 2)) * 1000
            out["final"] = final = await call.wait(lambda e: caption("final")(e)
                                                   and e["audio_end_ms"] > start_ms, 40)
            out["translation"] = final and await call.wait(
                lambda e: caption("translation")(e) and e["segment"] == final["segment"], 20)
            return out

        try:
            out = run_call(redis_url, serve, tmp_path, {"stt": stt_url, "mt": mt.url,
                                                        "tts": tts.url}, scenario)
        finally:
            servers[-1].__exit__()
    assert out["told_while_quiet"] == [], out["told_while_quiet"]
    assert out["down"] is not None, "participants were not told that captions paused"
    assert out["down"]["message"] and out["down"]["speaker"]
    video, audio = out["media_during_outage"]
    assert video >= 20 and audio >= 50, out["media_during_outage"]  # ~30 fps, 50 frames/s
    assert out["up"] is not None, "participants were not told that captions are back"
    assert out["final"] is not None and wer(SENTENCE, out["final"]["text"]) <= 0.2, out["final"]
    assert out["translation"] is not None and out["translation"]["translations"]["vi"]
