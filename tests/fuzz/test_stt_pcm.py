"""Random and adversarial PCM against stt's stream (the stack's VAD + Whisper tiny.en): odd
sizes, extreme values, float NaN/Inf bit patterns sent as s16le, text frames, bad parameters,
two minutes of silence sent at once, 20 sessions at once. Every stream ends with the close code that
its input calls for (stt/app.py documents them), never a recognizer failure or a dropped
socket; afterwards stt still transcribes a real sentence."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fuzz.stack import TEST_TIMEOUT_S, Stack, seeded
from jbcalling.stt import app as stt_app
from speech_fixtures import resample, stream_pcm, wer

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(TEST_TIMEOUT_S)]
EXAMPLES = 60
MAX_FRAME = 64000  # the stack's stt: default max_frame_bytes
DOCUMENTED = {int(c) for c in re.findall(r"\b(1\d{3})\b", stt_app.__doc__ or "")}
RESULT_TYPES = {"ready", "partial", "final", "error", "closed"}
HANDSHAKE_REFUSED = -403
SENTENCE = "Please send me the report before the meeting tomorrow."


def _pattern(name: str, n: int) -> bytes:
    """``n`` samples (2n bytes) of an adversarial pattern."""
    i = np.arange(n)
    if name in ("nan", "inf", "-inf", "denormal"):  # float32 bit patterns, not s16le audio
        value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "denormal": 1e-45}[name]
        return np.full((n + 1) // 2, value, dtype="<f4").tobytes()[:2 * n]
    samples = {
        "max": np.full(n, 32767), "min": np.full(n, -32768),
        "nyquist": np.where(i % 2, 32767, -32768),  # the loudest, highest tone there is
        "impulses": np.where(i % 1600 == 0, 32767, 0),
        "dc": np.full(n, 12000),
        "sweep": (32767 * np.sin(2 * np.pi * (50 + i * 0.5) * i / 16000)).astype(np.int64),
    }[name]
    return samples.astype("<i2").tobytes()


audio_frames = st.one_of(
    st.binary(max_size=4000),  # random bytes, odd and even lengths
    st.builds(_pattern, st.sampled_from(["nan", "inf", "-inf", "denormal", "max", "min", "nyquist",
                                         "impulses", "dc", "sweep"]),
              st.sampled_from([1, 160, 8000, 16000, MAX_FRAME // 2])),
    st.sampled_from([b"", b"\x00", b"\x00" * (MAX_FRAME + 2), b"\xff" * (MAX_FRAME + 1)]),
)
text_frames = st.sampled_from(['{"type": "stop"}', "[]", "end", "", '{"type": ["end"]}',
                               json.dumps({"type": "end", "x": "y" * 5000})]) | st.text(max_size=50)


def expected_close(lang: str, rate: str, frames: list[bytes | str]) -> int:
    """The close code stt/app.py documents for this input."""
    if not rate.lstrip("-").isdigit():
        return HANDSHAKE_REFUSED  # not an integer at all: FastAPI refuses it, stt never runs
    if lang != "en":  # the stack recognizes English only
        return 1008 if lang not in ("en", "vi") else 1011
    if rate != "16000":
        return 1003
    for frame in frames:
        if isinstance(frame, str):
            try:
                control = json.loads(frame)
            except ValueError:
                return 1003
            return 1000 if isinstance(control, dict) and control.get("type") == "end" else 1003
        if len(frame) > MAX_FRAME:
            return 1009
        if len(frame) % 2:
            return 1003
    return 1000


def run_stream(url: str, frames: list[bytes | str], timeout: float = 60) -> tuple[int | None, list]:
    """Send ``frames`` then ``{"type": "end"}``; the close code and the messages received."""
    messages: list[dict[str, Any]] = []
    try:
        ws = connect(url, open_timeout=10, close_timeout=10)
    except InvalidStatus as refused:
        assert refused.response.status_code == 403, refused
        return HANDSHAKE_REFUSED, messages
    with ws:
        try:
            for frame in frames + [json.dumps({"type": "end"})]:
                ws.send(frame)
        except ConnectionClosed:
            pass
        code = drain(ws, messages, timeout)
    return code, messages


def drain(ws: ClientConnection, messages: list[dict[str, Any]], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"stt did not close the stream in {timeout} s: {messages[-3:]}"
            msg = json.loads(ws.recv(timeout=left))
            assert msg.get("type") in RESULT_TYPES, msg
            messages.append(msg)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def stream_url(stack: Stack, lang: str = "en", rate: str = "16000") -> str:
    return f"{stack.stt.replace('http', 'ws')}/v1/stream?lang={lang}&sample_rate={rate}"


def test_adversarial_frames_end_with_the_documented_close(stack: Stack) -> None:
    codes: dict[int | None, int] = {}

    @seeded(EXAMPLES)
    @given(lang=st.sampled_from(["en"] * 6 + ["vi", "fr", "", "EN"]),
           rate=st.sampled_from(["16000"] * 6 + ["8000", "0", "-1", "99999999999", "x"]),
           frames=st.lists(audio_frames | text_frames, min_size=1, max_size=6))
    def run(lang: str, rate: str, frames: list[bytes | str]) -> None:
        want = expected_close(lang, rate, frames)
        code, messages = run_stream(stream_url(stack, lang, rate), frames)
        assert code in DOCUMENTED | {HANDSHAKE_REFUSED}, (code, messages[-3:])
        # 1013: recognition fell behind, allowed for any valid audio on 2 shared cores
        assert code == want or (want == 1000 and code == 1013), (want, code, messages[-3:])
        if code not in (1000, 1008, HANDSHAKE_REFUSED):
            assert messages[-1]["type"] == "error" and messages[-1]["code"], messages[-3:]
        codes[code] = codes.get(code, 0) + 1

    run()
    assert {1000, 1003, 1009} <= set(codes), codes  # the generator reached each path


def test_minutes_of_silence_then_a_sentence(stack: Stack, sentence: np.ndarray) -> None:
    """Two minutes of silence sent at once (the stack's stt queues up to 150 s), then a real
    sentence on the same stream: it is recognized."""
    messages: list[dict[str, Any]] = []
    with connect(stream_url(stack), open_timeout=10, close_timeout=10) as ws:
        two_seconds = np.zeros(32000, dtype="<i2").tobytes()
        for _ in range(60):
            ws.send(two_seconds)
        for i in range(0, len(sentence), 1600):
            ws.send(sentence[i:i + 1600].astype("<i2").tobytes())
        ws.send(np.zeros(16000, dtype="<i2").tobytes())
        ws.send(json.dumps({"type": "end"}))
        code = drain(ws, messages, 120)
    finals = [m["text"] for m in messages if m["type"] == "final"]
    assert code == 1000, messages[-3:]
    assert finals and wer(SENTENCE, " ".join(finals)) <= 0.3, finals


def test_twenty_concurrent_sessions(stack: Stack) -> None:
    """20 streams at once, each with noise and extreme samples: the instance admits up to its
    capacity and refuses the rest with 1013 (busy), each refusal only when it had as many open as
    the capacity it states (the figure follows the observed load, stt/capacity.py, and may drop
    while the streams open); the admitted ones are served to their end (1000)."""
    before = httpx.get(stack.stt + "/ready", timeout=10).json()["load"]
    noise = np.random.default_rng(20).integers(-32768, 32767, 32000).astype("<i2").tobytes()
    opened: list[ClientConnection] = []
    results: list[tuple[int | None, list[dict[str, Any]]]] = []
    refused: list[tuple[int | None, int, int]] = []  # (close code, capacity stated, streams open)
    for _ in range(20):
        ws = connect(stream_url(stack), open_timeout=10, close_timeout=10).__enter__()
        first = json.loads(ws.recv(timeout=10))
        if first["type"] == "ready":
            opened.append(ws)
        else:
            assert first["type"] == "error" and first["code"] == "busy", first
            refused.append((drain(ws, [], 10), first["capacity_streams"],
                            before["streams"] + len(opened)))
            ws.__exit__(None, None, None)
    after = httpx.get(stack.stt + "/ready", timeout=10).json()["load"]

    def speak(ws: ClientConnection) -> None:
        for frame in (noise[:32000], _pattern("nyquist", 8000), noise[32000:], b"\x00" * 32000):
            ws.send(frame)
        ws.send(json.dumps({"type": "end"}))
        messages: list[dict[str, Any]] = []
        results.append((drain(ws, messages, 120), messages))
        ws.__exit__(None, None, None)

    threads = [threading.Thread(target=speak, args=(ws,)) for ws in opened]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    most = min(before["max_sessions"], max(before["capacity_streams"], after["capacity_streams"]))
    assert len(opened) >= 1 and before["streams"] + len(opened) <= most, (len(opened), before, after)
    assert len(refused) == 20 - len(opened) and all(
        code == 1013 and open_ >= stated for code, stated, open_ in refused), refused
    assert len(results) == len(opened) and {code for code, _ in results} <= {1000, 1013}, \
        [(c, m[-2:]) for c, m in results if c != 1000]


@pytest.fixture(scope="module")
def sentence(stack: Stack) -> np.ndarray:
    """The test sentence spoken by the stack's tts (joe), 16 kHz int16."""
    resp = httpx.post(stack.tts + "/v1/synthesize", json={"lang": "en", "text": SENTENCE},
                      timeout=60)
    assert resp.status_code == 200, resp.text
    return resample(np.frombuffer(resp.content, dtype="<i2"), int(resp.headers["X-Sample-Rate"]))


def test_a_real_sentence_is_still_recognized(stack: Stack, sentence: np.ndarray) -> None:
    audio = np.concatenate([sentence, np.zeros(16000, dtype=np.int16)])
    messages, code, _ = stream_pcm(stream_url(stack), audio)
    finals = [m["text"] for m in messages if m["type"] == "final"]
    assert code == 1000 and finals and wer(SENTENCE, " ".join(finals)) <= 0.3, (code, finals)
