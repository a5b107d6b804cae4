"""Admission instead of silent loss (docs/operations.md "Admission"): only people who talk take
stt streams; an stt instance that serves as many streams as it recognizes in real time refuses
the next one, the room is told that the speaker's captions wait (``captions_status: busy``), and
they come once the first speaker has gone quiet.

Real parts: a jb-gateway process, the signaling app, an stt (VAD + Whisper tiny.en) configured for
one stream, tts (joe voice) to speak the sentence, real Redis, real aiortc participants (audio
only) on loopback; mt is stopped (captions only). A and B speak English in one room where C and D
only listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import free_port
from gateway_process import start_gateway, stop_gateway
from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
from jbcalling.common.audio import resample_to_48k
from jbcalling.signaling.app import create_app as create_signaling
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.speech.layout import DEV_VOICES, DEV_WHISPER_EN
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.app import create_app as create_tts
from jbcalling.tts.settings import TtsSettings
from room_events import wait_for
from speech_fixtures import beckett, models_dir, wer  # noqa: F401

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("loopback_ice")]
SENTENCE = "We should start the project next week."
Event = dict[str, Any]


class Speaker:
    def __init__(self, joined: dict[str, Any], gateway: str, room: str) -> None:
        self.pid, self.token = joined["participant_id"], joined["token"]
        self.mic = PcmTrack()
        self.peer = SyntheticPeer(gateway, room, self.pid, audio=self.mic, camera=False)
        self.events: list[Event] = []
        self.timed: list[tuple[float, Event]] = []  # the events with the wall time they came
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Future[None] | None = None

    async def connect(self, signaling: str, room: str) -> None:
        self.ws = await connect(signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
                                + self.token)
        for event in await negotiate_over_signaling(self.peer, self.ws):
            self._add(event)
        self.reader = asyncio.ensure_future(self._read())

    def _add(self, event: Event) -> None:
        self.events.append(event)
        self.timed.append((time.time(), event))

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            self._add(json.loads(raw))

    async def wait(self, pred: Callable[[Event], bool], timeout: float) -> Event | None:
        return await wait_for(self.events, pred, timeout)

    async def leave(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        await self.peer.close()


def status(pid: str, state: str) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "captions_status" and e["speaker"] == pid and e["state"] == state


def captions_of(events: list[Event], pid: str) -> list[Event]:
    return [e for e in events if e["type"] == "caption" and e["speaker"] == pid]


async def streams(stt: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        return dict((await http.get(stt + "/ready")).json()["load"])


async def quiet_s(gateway: str) -> float:
    """The gateway's count of audio it held no stream for because its participant was quiet."""
    async with httpx.AsyncClient(timeout=10) as http:
        return metric((await http.get(gateway + "/metrics")).text,
                      'jb_gateway_audio_dropped_seconds_total{reason="quiet"}')


async def refused(stt: str) -> tuple[Event, int | None]:
    """A stream opened directly while the one place is taken: stt's own refusal."""
    async with connect(stt.replace("http", "ws") + "/v1/stream?lang=en") as ws:
        message = json.loads(await ws.recv())
        await ws.wait_closed()
        return message, ws.close_code


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_listeners_take_no_stream_and_a_talker_beyond_capacity_waits_until_the_first_is_quiet(
        models_dir: Path, redis_url: str, serve: Any, tmp_path: Path) -> None:  # noqa: F811
    """stt's places go to people who talk (gateway/speaker_stream.py): with room for one stream,
    two silent listeners and a silent Binh take none, An takes the one place when he talks, Binh
    is told busy when he starts talking (not at join), and gets captions once An has been quiet
    for the gateway's JB_GATEWAY_STT_QUIET_CLOSE_S (2 s here)."""
    # max_backlog_s: on a loaded machine A's one stream may fall 3 s behind and skip (busy, then
    # available: test below); this test is about B, beyond the capacity
    stt_app = create_stt(SttSettings(models_dir=models_dir, capacity_streams=1, max_backlog_s=10,
                                     languages={"en": f"vad-whisper:{DEV_WHISPER_EN}"}))
    dead = f"http://127.0.0.1:{free_port()}"  # mt: nothing listens (captions only)
    with serve(stt_app) as stt, serve(create_tts(TtsSettings(models_dir=models_dir,
                                                             voices=DEV_VOICES))) as tts:
        speech = httpx.post(tts.url + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                            timeout=30)
        assert speech.status_code == 200
        utterance = resample_to_48k(speech.content, int(speech.headers["X-Sample-Rate"]))
        utterance += bytes(48000 * 2 * 2)
        proc, gateway = start_gateway(redis_url, tmp_path / "gateway.log",
                                      urls={"stt": stt.url, "mt": dead, "tts": tts.url},
                                      stt_quiet_close_s="2")
        try:
            settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40,
                                         gateway_url=gateway)
            with serve(create_signaling(settings)) as sig:
                out = asyncio.run(_scenario(sig.url, gateway, stt.url, utterance))
            out["metrics"] = httpx.get(gateway + "/metrics", timeout=10).text
        finally:
            stop_gateway(proc)
    a, b = out["a"], out["b"]
    # nobody talked: four participants' audio reached the gateway, and stt had no stream open
    assert out["silent_load"]["streams"] == 0 and out["silent_quiet_s"] > 2.0, out
    assert out["load"]["capacity_streams"] == 1 and out["load"]["active_streams"] == 1, out["load"]
    assert out["load"]["capacity_source"] == "configured"
    message, code = out["refused"]
    assert code == 1013 and message["code"] == "busy" and message["capacity_streams"] == 1, out
    events = out["events"]
    statuses = [(at, e) for at, e in events if e["type"] == "captions_status"]
    busy = out["busy"]
    assert busy is not None, statuses
    assert "capacity" in busy["message"]
    # told when he started talking, not when he joined; nobody else was told anything
    assert min(at for at, e in statuses if e["speaker"] == b) >= out["b_talks_at"], statuses
    assert {e["speaker"] for _, e in statuses} == {b}, statuses
    a_final = next((e for _, e in events if e["type"] == "caption" and e["kind"] == "final"
                    and e["speaker"] == a), None)
    assert a_final is not None and wer(SENTENCE, a_final["text"]) <= 0.2, a_final
    assert out["while_busy"] == [], "B had captions while stt had no room for them"
    assert out["available"] is not None, "B was not told that captions came"
    final = out["final"]
    assert final is not None and wer(SENTENCE, final["text"]) <= 0.2, final
    # counted once per wait (not per retry): each time B's status turned busy
    states = [e["state"] for _, e in statuses]
    waits = sum(1 for i, st in enumerate(states) if st == "busy" and
                (i == 0 or states[i - 1] != "busy"))
    assert metric(out["metrics"], "jb_gateway_captions_busy_total") == waits >= 1, states
    # B's audio while it waited, beyond the few seconds kept for the replay, is counted; so is
    # the audio of everyone while quiet with no stream (listeners: the whole call)
    dropped = metric(out["metrics"], 'jb_gateway_audio_dropped_seconds_total{reason="busy"}')
    assert dropped > 0.3, dropped
    quiet = metric(out["metrics"], 'jb_gateway_audio_dropped_seconds_total{reason="quiet"}')
    assert quiet > out["silent_quiet_s"] + 10, quiet


async def _scenario(signaling: str, gateway: str, stt: str, utterance: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
        joined = [(await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": name, "speak": "en", "captions": "en", "hear_translation": False})).json()
            for name in ("An", "Binh", "Cara", "Dung")]
    people = [Speaker(j, gateway, room) for j in joined]
    a, b = people[:2]
    out["a"], out["b"] = a.pid, b.pid
    seen: list[tuple[float, Event]] = []  # Cara's events (a listener), with when they came
    try:
        for p in people:
            await p.connect(signaling, room)
        listener = people[2]
        await asyncio.sleep(2.0)  # everyone's silence flows to the gateway
        quiet0 = await quiet_s(gateway)
        await asyncio.sleep(1.0)
        out["silent_load"] = await streams(stt)
        out["silent_quiet_s"] = await quiet_s(gateway) - quiet0
        a.mic.play(utterance)
        deadline = time.monotonic() + 15
        while (await streams(stt))["active_streams"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        out["load"] = await streams(stt)
        out["refused"] = await refused(stt)
        out["b_talks_at"] = b.mic.play(utterance)  # heard by nobody: stt has no room for B
        out["busy"] = await listener.wait(status(b.pid, "busy"), 15)
        await asyncio.sleep(max(0.0, (b.mic.played_until or 0.0) - time.time()))
        out["while_busy"] = captions_of(listener.events, b.pid)
        # An is quiet now: his stream ends 2 s after his last word, and B, who talked within
        # the last seconds, gets the place at his next retry
        out["available"] = await listener.wait(status(b.pid, "available"), 25)
        b.mic.play(utterance)
        out["final"] = await listener.wait(lambda e: e["type"] == "caption"
                                           and e["kind"] == "final" and e["speaker"] == b.pid, 30)
        seen = listener.timed
    finally:
        for p in people:
            await p.leave()
    out["events"] = seen
    return out


def test_an_instance_that_lags_closes_its_newest_stream_and_the_oldest_skips_to_a_pause(
        models_dir: Path, serve: Any, beckett: np.ndarray) -> None:  # noqa: F811
    """The capacity observed while serving (stt/capacity.py, stt/admission.py): two streams
    send real speech twenty times faster than real time, more than one Whisper thread recognizes;
    the instance lags, lowers its capacity ("observed") and closes the newest stream with busy;
    the oldest goes on, drops what waited beyond max_backlog_s (skipped), recognizes again from
    a pause (resumed), and its last sentences, sent in real time, come as whole finals."""
    # a large budget: the start-up measurement admits both streams even on a loaded machine
    app = create_stt(SttSettings(models_dir=models_dir, threads=1, capacity_budget=16,
                                 capacity_window_s=1, capacity_lag_s=0.5, max_backlog_s=2.0,
                                 languages={"en": f"vad-whisper:{DEV_WHISPER_EN}"}))
    speech = np.concatenate([beckett, np.zeros(8000, np.int16)])  # 10.5 s, repeated at 20x
    tail = np.concatenate([beckett[-16000 * 3:], np.zeros(16000, np.int16)])  # at 1x
    with serve(app) as stt:
        out = asyncio.run(_two_fast_streams(stt.url, speech, tail))
        load = httpx.get(stt.url + "/ready", timeout=10).json()["load"]
        metrics = httpx.get(stt.url + "/metrics", timeout=10).text
    (old, old_code), (new, new_code) = out
    assert new_code == 1013 and new[-1]["type"] == "error" and new[-1]["code"] == "busy", new[-3:]
    assert "over capacity" in new[-1]["message"] and new[-1]["capacity_streams"] >= 1
    assert load["capacity_source"] == "observed", load
    assert metric(metrics, "jb_stt_streams_shed_total") == 1
    assert old_code == 1000, old[-3:]
    kinds = [m["type"] for m in old]
    assert "skipped" in kinds and "resumed" in kinds[kinds.index("skipped"):], kinds
    dropped = sum(m["dropped_s"] for m in old if m["type"] == "skipped")
    assert dropped > 1.0 and metric(metrics, 'jb_stt_audio_dropped_seconds_total{lang="en",'
                                              'reason="backlog"}') >= dropped - 0.1
    finals = [m for m in old if m["type"] == "final" and m["text"]]
    assert finals, kinds
    # each final is heard in full, at its place in the stream: none spans a dropped stretch
    assert all(m["end_ms"] - m["start_ms"] < 4000 for m in finals), finals


async def _two_fast_streams(stt: str, speech: np.ndarray,
                            tail: np.ndarray) -> list[tuple[list[Event], int | None]]:
    """Both streams send ``speech`` over and over at 20x real time (faster than one Whisper
    thread recognizes on any machine this runs on) until the newest is closed and the oldest has
    skipped, for at most 60 s; then the oldest sends ``tail`` in real time and ends."""
    url = stt.replace("http", "ws") + "/v1/stream?lang=en"
    old = await connect(url)
    assert json.loads(await old.recv())["type"] == "ready"
    new = await connect(url)
    assert json.loads(await new.recv())["type"] == "ready"
    heard: dict[ClientConnection, list[Event]] = {old: [], new: []}
    deadline = time.monotonic() + 60

    def overloaded() -> bool:
        return new.close_code is not None and any(m["type"] == "skipped" for m in heard[old])

    async def talk(ws: ClientConnection) -> tuple[list[Event], int | None]:
        messages = heard[ws]

        async def read() -> None:
            async for raw in ws:
                messages.append(json.loads(raw))

        reader = asyncio.ensure_future(read())
        with contextlib.suppress(ConnectionClosed):
            k = 0
            while not overloaded() and time.monotonic() < deadline:  # 100 ms frames
                await ws.send(speech[k:k + 1600].astype("<i2").tobytes())
                k = (k + 1600) % len(speech)
                await asyncio.sleep(0.005)
            for k in range(0, len(tail), 1600):
                await ws.send(tail[k:k + 1600].astype("<i2").tobytes())
                await asyncio.sleep(0.1)
            await ws.send(json.dumps({"type": "end"}))
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(reader, 60)
        return messages, ws.close_code

    return list(await asyncio.gather(talk(old), talk(new)))
