"""`kill -9` of the stt task in the middle of a sentence while the speaker goes on talking, on a
deployed dev cluster: what a listener sees, with the times of every step of the recovery.

Speaker A (English) plays one sentence after another (the cluster's own tts, joe voice, 1.2 s
apart); listener B records every room event with its arrival time. In the middle of a sentence
the stt process (found under the cluster's state folder) gets SIGKILL; Nomad's restart block
brings it back in the same allocation (same port). Watched every 0.1 s: a new stt process, its
``/ready`` answering 200, its Consul check passing. Used by tests/integration/test_stt_kill.py and
benchmarks/stt_kill_bench.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SENTENCES = [
    "Please send me the report before the meeting tomorrow.",
    "We should start the project next week.",
    "Thank you for joining the call today.",
    "The new office opens in March.",
    "Our team finished the testing on Friday.",
    "Let us review the budget after lunch.",
    "The train to the city leaves at nine.",
    "I will call the customer this afternoon.",
    "Please check the numbers in the second table.",
    "The weather should be better on Sunday.",
    "We need two more chairs in the meeting room.",
    "My brother bought a new car last month.",
    "The children are playing in the garden.",
    "Send the invoice to the accounting team.",
]
GAP_S = 1.2  # silence between sentences: well above the VAD's 300 ms end of utterance
KILL_IN = 2  # the sentence (after the warm-up one) during which stt is killed
WER_TOLERANCE = 0.25


def stt_pids(root: Path) -> list[int]:
    """The jb-stt processes Nomad started for the cluster whose state folder is ``root``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if any(part.endswith(b"/jb-stt") for part in cmd[:2]) and cwd.startswith(str(root)):
                pids.append(int(entry.name))
    return pids


@dataclass
class KillRun:
    """Wall times (time.time()) of one kill and what B received."""

    kill: float = 0.0
    killed_pid: int = 0
    restarted: float | None = None  # a new jb-stt process exists
    ready: float | None = None  # its /ready answered 200
    critical: float | None = None  # Consul stopped reporting it passing
    passing: float | None = None  # then reports it passing again
    sentences: list[tuple[str, float, float]] = field(default_factory=list)  # text, start, end
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def captions(self, kinds: tuple[str, ...]) -> list[tuple[float, dict[str, Any]]]:
        return [(at, e) for at, e in self.events
                if e.get("type") == "caption" and e.get("kind") in kinds]

    def first_after_kill(self, kinds: tuple[str, ...]) -> float | None:
        return next((at - self.kill for at, _ in self.captions(kinds) if at > self.kill), None)

    def after_ready(self) -> list[tuple[str, float, float]]:
        """The sentences that start once stt answers again (the ones that must be captioned)."""
        return [s for s in self.sentences if self.ready is not None and s[1] >= self.ready]

    def best_final(self, text: str) -> tuple[float, str]:
        from speech_fixtures import wer

        finals = [e["text"] for _, e in self.captions(("final",))]
        return min(((wer(text, f), f) for f in finals), default=(1.0, ""))

    def missed(self) -> list[tuple[str, float, str]]:
        """Sentences after ``ready`` with no final within the WER tolerance: (text, WER, best)."""
        out = []
        for text, _, _ in self.after_ready():
            score, best = self.best_final(text)
            if score > WER_TOLERANCE:
                out.append((text, score, best))
        return out

    def status(self) -> list[tuple[float, str]]:
        return [(round(at - self.kill, 2), e["state"]) for at, e in self.events
                if e.get("type") == "captions_status" and at > self.kill]

    def summary(self) -> dict[str, Any]:
        def since(t: float | None) -> float | None:
            return None if t is None else round(t - self.kill, 2)

        nxt = self.first_after_kill(("partial", "final"))
        return {
            "next_caption_s": None if nxt is None else round(nxt, 2),
            "next_final_s": since(None if (f := self.first_after_kill(("final",))) is None
                                  else self.kill + f),
            "restarted_s": since(self.restarted), "ready_s": since(self.ready),
            "consul_critical_s": since(self.critical), "consul_passing_s": since(self.passing),
            "captions_status": self.status(),
            "sentences_after_ready": len(self.after_ready()),
            "missed": [[t, round(w, 2), best] for t, w, best in self.missed()],
            "captioned_before_ready": [
                text for text, start, end in self.sentences
                if self.ready is not None and end > self.kill and start < self.ready
                and self.best_final(text)[0] <= WER_TOLERANCE],
        }


async def kill_during_speech(signaling: str, tts: str, stt: str, consul: str, root: Path,
                             say: Any = print) -> KillRun:
    """The whole scenario; every wait is bounded. ``stt``: the stt instance's base URL."""
    from websockets.asyncio.client import connect

    from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
    from jbcalling.common.audio import resample_to_48k

    run = KillRun()
    async with httpx.AsyncClient(timeout=30) as http:
        clips = []
        for text in SENTENCES:
            resp = await http.post(tts + "/v1/synthesize", json={"lang": "en", "text": text})
            resp.raise_for_status()
            clips.append(resample_to_48k(resp.content, int(resp.headers["X-Sample-Rate"])))
        room = (await http.post(signaling + "/api/rooms")).json()["room_id"]
        a, b = [(await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": name, "speak": "en", "captions": "en"})).json() for name in ("An", "Ben")]
    ws_base = signaling.replace("http", "ws", 1) + f"/ws/rooms/{room}?token="
    mic = PcmTrack()
    pa = SyntheticPeer("", room, a["participant_id"], audio=mic, camera=False)
    pb = SyntheticPeer("", room, b["participant_id"], camera=False)
    async with connect(ws_base + a["token"]) as wa, connect(ws_base + b["token"]) as wb:
        await negotiate_over_signaling(pa, wa)
        await negotiate_over_signaling(pb, wb)

        async def listen() -> None:
            async for raw in wb:
                run.events.append((time.time(), json.loads(raw)))

        async def drain() -> None:  # a socket nobody reads is dropped by signaling's keepalive
            async for _ in wa:
                pass

        tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(drain())]
        try:
            await asyncio.sleep(1.0)
            mic.play(clips[0] + bytes(int(48000 * 2 * GAP_S)))
            if not await _until(lambda: run.captions(("final",)), 60):
                raise AssertionError(f"no final caption for the warm-up sentence: {run.events}")
            for text, pcm in zip(SENTENCES[1:], clips[1:], strict=True):
                start = mic.play(pcm + bytes(int(48000 * 2 * GAP_S)))
                run.sentences.append((text, start, start + len(pcm) / 96000))
            _, start, end = run.sentences[KILL_IN]
            await asyncio.sleep(start + 0.4 * (end - start) - time.time())
            (run.killed_pid,) = await asyncio.to_thread(stt_pids, root)
            os.kill(run.killed_pid, signal.SIGKILL)
            run.kill = time.time()
            say(f"stt_kill: killed pid {run.killed_pid} {run.kill - start:.1f} s into "
                f"sentence {KILL_IN + 1}")
            await _watch_recovery(run, stt, consul, root)
            # every sentence played, then the finals of those after ready (bounded)
            last_end = run.sentences[-1][2]
            await _until(lambda: time.time() > last_end + 3 and not run.missed(),
                         last_end + 25 - time.time())
        finally:
            for task in tasks:
                task.cancel()
            await pa.close()
            await pb.close()
    return run


async def _watch_recovery(run: KillRun, stt: str, consul: str, root: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=0.5) as http:
        while time.monotonic() < deadline and None in (run.restarted, run.ready, run.passing):
            now = time.time()
            if run.restarted is None and [p for p in await asyncio.to_thread(stt_pids, root)
                                          if p != run.killed_pid]:
                run.restarted = now
            if run.ready is None:
                try:
                    if (await http.get(stt + "/ready")).status_code == 200:
                        run.ready = now
                except httpx.HTTPError:
                    pass
            if run.passing is None:
                try:
                    resp = await http.get(f"{consul}/v1/health/service/stt",
                                          params={"passing": "1"})
                    up = resp.status_code == 200 and bool(resp.json())
                    if not up and run.critical is None:
                        run.critical = now
                    elif up and run.critical is not None:
                        run.passing = now
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.1)


async def _until(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + max(0.0, timeout)
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.1)
    return bool(cond())
