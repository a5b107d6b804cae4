"""stt's session limits, tried as a client that never stops or goes quiet would, and the
gateway's hand-over that keeps a long talk's captions whole.

stt runs the streaming backend with the stand-in transducer (it writes text for a loud tone) in
a real uvicorn server; the gateway's speaker pipeline runs in-process against it, with real
Redis for the room's people.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from jbcalling.common.discovery import Discovery
from jbcalling.common.protocol import Caption, CaptionsStatus, Event, Participant, room_key
from jbcalling.gateway.pipeline import Pipeline
from jbcalling.speech import layout
from jbcalling.stt.app import create_app
from jbcalling.stt.settings import SttSettings

pytestmark = pytest.mark.models
MAX_S, IDLE_S = 3.0, 1.0


@pytest.fixture(scope="module")
def stt_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    models = tmp_path_factory.mktemp("models")
    layout.install_dev_models(models, only={layout.DEV_TRANSDUCER, layout.DEV_VAD})
    spec = f"streaming:{layout.DEV_TRANSDUCER}"
    return create_app(SttSettings(models_dir=models, threads=1, max_backlog_s=60,
                                  endpoint_trailing_silence_s=0.3, max_session_s=MAX_S,
                                  idle_timeout_s=IDLE_S, languages={"en": spec}))


def tone(seconds: float) -> bytes:
    """16 kHz s16le: a warbling tone the stand-in recognizer writes text for."""
    t = np.arange(int(16000 * seconds)) / 16000
    return (8000 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(
        np.int16).tobytes()


def metric(url: str, name: str, labels: str = "") -> float:
    """The sum of a Prometheus counter's samples (those whose labels contain ``labels``)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if (line.startswith(name + "{") or line.startswith(name + " "))
               and labels in line)


def read_until_closed(ws: Any, timeout: float) -> tuple[list[dict[str, Any]], float]:
    messages = []
    try:
        while True:
            messages.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed:
        return messages, time.monotonic()


def test_a_stream_over_its_length_or_idle_is_closed(stt_app: Any, serve: Any) -> None:
    with serve(stt_app) as srv:
        url = srv.url.replace("http", "ws") + "/v1/stream?lang=en"
        before = metric(srv.url, "jb_stt_audio_received_seconds_total")
        with connect(url) as ws:  # a client that never stops talking
            assert ws.recv(timeout=10)
            audio = tone(MAX_S + 1.5)
            try:
                for i in range(0, len(audio), 3200):
                    ws.send(audio[i:i + 3200])
            except ConnectionClosed:
                pass
            messages, _ = read_until_closed(ws, 20)
            assert ws.close_code == 1000 and ws.close_reason == "max_length"
        closed = messages[-1]
        assert closed["type"] == "closed" and closed["reason"] == "max_length", messages[-3:]
        assert any(m["type"] == "final" for m in messages), "the last utterance was not finished"
        taken = metric(srv.url, "jb_stt_audio_received_seconds_total") - before
        assert taken == pytest.approx(MAX_S)  # not a sample more

        with connect(url) as ws:  # a client that opens a stream and goes quiet
            assert ws.recv(timeout=10)
            ws.send(tone(0.3))
            quiet_from = time.monotonic()
            messages, at = read_until_closed(ws, 20)
            assert ws.close_code == 1000 and ws.close_reason == "idle"
        assert messages[-1]["type"] == "closed" and messages[-1]["reason"] == "idle"
        assert IDLE_S - 0.1 <= at - quiet_from <= IDLE_S + 3, at - quiet_from


def test_a_long_talk_hands_over_to_new_streams_and_loses_no_audio(stt_app: Any, serve: Any,
                                                                   redis_url: str) -> None:
    with serve(stt_app) as srv:
        before = metric(srv.url, "jb_stt_audio_received_seconds_total")
        cut = 'reason="max_length"'
        limited = metric(srv.url, "jb_stt_sessions_limited_total", cut)
        events, pushed = asyncio.run(_talk(srv.url, redis_url, MAX_S * 3))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the pipeline sends what it queued, then stt has it
            taken = metric(srv.url, "jb_stt_audio_received_seconds_total") - before
            if taken >= pushed - 1e-6:
                break
            time.sleep(0.2)
        assert taken == pytest.approx(pushed), "audio lost at a hand-over"
        assert metric(srv.url, "jb_stt_sessions_limited_total", cut) == limited, \
            "stt had to cut a stream: the gateway did not hand over before the limit"
    captions = [e for e in events if isinstance(e, Caption)]
    legs = {c.segment.split(":")[0] for c in captions if c.kind == "final"}
    assert len(legs) >= 3, f"finals came from streams {legs}: no hand-over"
    assert not [e for e in events if isinstance(e, CaptionsStatus)], "captions paused"


async def _talk(stt: str, redis_url: str, seconds: float) -> tuple[list[Event], float]:
    room, pid = "sessionroom", "speaker1"
    redis = aioredis.Redis.from_url(redis_url)
    await redis.hset(room_key(room, "people"), pid, Participant(
        pid, "Sam", "en", "en", False, "guest", time.time(), True).to_json())
    events: list[Event] = []

    async def publish(_: str, event: Event) -> None:
        events.append(event)

    pipeline = Pipeline(Discovery("http://127.0.0.1:1", {"stt": stt}), redis, publish,
                        lambda _: {})
    burst = tone(0.6) + bytes(int(16000 * 0.6) * 2)  # an utterance, then a pause
    pushed = 0
    try:
        while pushed < seconds * 32000:
            for i in range(0, len(burst), 3200):  # 100 ms chunks at 4x real time
                pipeline.audio(room, pid, burst[i:i + 3200])
                pushed += len(burst[i:i + 3200])
                await asyncio.sleep(0.025)
        await asyncio.sleep(2.0)  # the last results
    finally:
        await pipeline.close()
        await redis.delete(room_key(room, "people"))
        await redis.aclose()
    return events, pushed / 32000
