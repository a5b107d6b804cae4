"""The node stt runs on is lost during a call (powered off: its link goes down and nothing is said
on the way, no FIN, no RST): the speaker's room is told at once that captions paused, and they
resume when the node is back.

tests/integration/test_production.py loses the whole ai node (its processes killed, then its
link down); whether the killed stt's sockets are closed before the link goes down is a race, and
with the link first the gateway's stream is left on a connection that says nothing. This test
takes the link down alone, so that the gateway must notice the loss by itself.

Real parts: a jb-stt process (VAD + Whisper tiny.en) inside a network namespace the test
creates, reached over a veth pair; a jb-gateway process, the signaling app, tts (to synthesize
the sentence), real Redis, real aiortc participants. mt is stopped (captions come untranslated).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_call_degradation import SENTENCE, Call, caption, mt_app, run_call, spoken, tts_app

from jbcalling.speech.layout import DEV_WHISPER_EN
from speech_fixtures import models_dir, wer  # noqa: F401

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("loopback_ice")]
PORT = 8081
# The gateway must say that captions paused this soon after the node's link went down
# (its stream's unacknowledged audio times out: gateway/speaker_stream.py, ACK_TIMEOUT_S).
TOLD_WITHIN_S = 15.0


def _run(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 0, f"{' '.join(argv)}: {res.stdout}{res.stderr}"
    return res.stdout


@pytest.fixture
def stt_node(models_dir: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:  # noqa: F811
    """A jb-stt serving en in a network namespace of its own, reached over a veth pair from
    this one (198.18.x.0/30, a benchmarking range routed nowhere else); yields (its URL, the
    outer veth, whose link the test sets down and up)."""
    tag = f"jbs{os.getpid() % 10000}"
    used = _run("ip", "-4", "-o", "addr")
    third = next((t for t in range(os.getpid() % 200, 256) if f"198.18.{t}." not in used), None)
    assert third is not None, "no free 198.18.x.0/30 for the stt node"
    outer, inner, ns = f"{tag}o", f"{tag}i", tag
    addr = f"198.18.{third}"
    log = (tmp_path / "stt.log").open("ab")
    proc = None
    try:
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        _run("ip", "link", "set", inner, "netns", ns)
        _run("ip", "addr", "add", f"{addr}.1/30", "dev", outer)
        _run("ip", "link", "set", outer, "up")
        _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}.2/30", "dev", inner)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        env = {**os.environ, "JB_STT_HOST": f"{addr}.2", "JB_STT_PORT": str(PORT),
               "JB_STT_MODELS_DIR": str(models_dir), "JB_STT_THREADS": "1",
               "JB_STT_LANGUAGES": json.dumps({"en": f"vad-whisper:{DEV_WHISPER_EN}"})}
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "jbcalling.stt"],
                                env=env, stdout=log, stderr=log)
        url = f"http://{addr}.2:{PORT}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "stt.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "stt.log").read_text()[-3000:]
            time.sleep(0.5)
        yield url, outer
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(30)
        log.close()
        subprocess.run(["ip", "link", "del", outer], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_the_stt_node_lost_is_said_at_once_and_captions_come_back(
        stt_node: tuple[str, str], models_dir: Path, redis_url: str, serve: Any,  # noqa: F811
        tmp_path: Path) -> None:
    stt_url, link = stt_node
    with serve(tts_app(models_dir)) as tts:
        utterance = spoken(tts.url) + bytes(48000 * 2 * 2)
        tts_url = tts.url
    with serve(mt_app(models_dir, redis_url)) as mt:
        mt_url = mt.url  # stopped: captions come untranslated

    def status(state: str, since: float) -> Any:
        return lambda e: e["type"] == "captions_status" and e["state"] == state and \
            e.get("_at", 0.0) >= since

    async def scenario(call: Call) -> dict[str, Any]:
        out: dict[str, Any] = {}
        stamp = asyncio.ensure_future(_stamp(call))  # the monotonic time each event came
        try:
            await asyncio.sleep(1.0)
            for _ in range(16):  # A talks throughout (the sentence with 2 s after it, ~4.5 s)
                call.mic.play(utterance)
            out["first"] = await call.wait(caption("final"), 40)
            lost = time.monotonic()
            await asyncio.to_thread(_run, "ip", "link", "set", link, "down")
            down = await call.wait(status("unavailable", lost), 60)
            out["told_after_s"] = down and down["_at"] - lost
            await asyncio.sleep(1.0)
            back = time.monotonic()
            await asyncio.to_thread(_run, "ip", "link", "set", link, "up")
            out["up"] = await call.wait(status("available", back), 30)
            # a sentence said after the link is back is captioned whole (the first stream after
            # the loss starts from stt's first pause, so a fragment of one may come before it)
            back_ms = time.time() * 1000
            out["final"] = await call.wait(lambda e: caption("final")(e)
                                           and e["audio_end_ms"] > back_ms
                                           and wer(SENTENCE, e["text"]) <= 0.2, 40)
            return out
        finally:
            out["events"] = list(call.events)
            stamp.cancel()

    out = run_call(redis_url, serve, tmp_path, {"stt": stt_url, "mt": mt_url, "tts": tts_url},
                   scenario)
    log = (tmp_path / "gateway.log").read_text(errors="replace")[-3000:]
    assert out["first"] is not None, "no caption before the node was lost: " + log
    assert out["told_after_s"] is not None, "the room was never told captions paused: " + log
    assert out["told_after_s"] <= TOLD_WITHIN_S, out["told_after_s"]
    assert out["up"] is not None, "the room was not told captions are back: " + log
    finals = [e["text"] for e in out["events"] if e["type"] == "caption" and e["kind"] == "final"]
    assert out["final"] is not None, f"no whole sentence captioned after the link was back: {finals}"


async def _stamp(call: Call) -> None:
    """Marks each of B's events with when it came (``_at``, monotonic)."""
    seen = 0
    while True:
        for e in call.events[seen:]:
            e.setdefault("_at", time.monotonic())
        seen = len(call.events)
        await asyncio.sleep(0.05)
