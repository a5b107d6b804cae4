"""Benchmark: N concurrent rooms against the running dev stack, to show admission (issue 14).

    JB_DEV_PORT_OFFSET=16000 JB_STATE_DIR=/tmp/h3state bash tools/up.sh   # a dev stack
    JB_DEV_PORT_OFFSET=16000 JB_STATE_DIR=/tmp/h3state \\
        .venv/bin/python benchmarks/capacity.py [--rooms 1 2 4 6 8] [--label after]

For each N, N rooms at once, each with one speaker who plays five English sentences (spoken by
the cluster's own tts, two seconds of silence after each) and one listener (English captions,
no spoken translation: the benchmark loads speech recognition, not tts). The listener records
every event. Per N it reports: finals after the end of speech (p50/p95 over the sentences that
got a caption; the last final of a sentence counts), the word error rate of the captions shown
(the sentences with captions; and of those whose speaker's room was told nothing, "untold"),
the speakers told ``captions_status: busy``, the speakers without any caption who were never
told busy (silent loss: must be 0), the sentences without a caption of which the room was
told nothing ("lost untold": captions later than the 10 s tail, or lost), and the most streams
stt had open meanwhile (read from its ``/ready`` every 0.5 s: the listeners, who never talk,
take none). Speakers start at the same moment, once their call's media is connected (a room
that connected late starts late: ``media_late_s``); audio only unless ``--camera``; a room
whose call cannot be set up is listed in ``rooms_failed``. Saves
benchmarks/results/capacity[-<label>].json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from speech_fixtures import wer  # noqa: E402  (the tests' word error rate, one definition)

SENTENCES = [
    "Please send me the report before the meeting tomorrow.",
    "We should start the project next week.",
    "Thank you for joining the call today.",
    "Can you hear me clearly now?",
    "The new office opens in March.",
]
GAP_S = 2.0  # silence after each sentence
TAIL_S = 10.0  # waited after the last sentence for its captions


def healthy(ctx: Any, service: str) -> str:
    for inst in ctx.consul.service_health(service):
        if all(ch["Status"] == "passing" for ch in inst["Checks"]):
            svc = inst["Service"]
            return f"http://{svc.get('Address') or inst['Node']['Address']}:{svc['Port']}"
    raise SystemExit(f"no healthy {service} instance in Consul: is the stack up? "
                     "(`bash tools/up.sh` with the same JB_DEV_PORT_OFFSET / JB_STATE_DIR)")


async def create_rooms(signaling: str, n: int) -> list[str]:
    """``n`` new rooms, waiting as signaling's creation rate limit says (429, Retry-After)."""
    ids: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        while len(ids) < n:
            resp = await http.post(signaling + "/api/rooms")
            if resp.status_code == 429:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "5")))
                continue
            resp.raise_for_status()
            ids.append(resp.json()["room_id"])
    return ids


async def room(signaling: str, room_id: str, clips: list[tuple[str, bytes]], start_at: float,
               camera: bool = False) -> dict[str, Any]:
    """One room: speaker plays the clips from ``start_at`` (wall time); the listener's events."""
    from websockets.asyncio.client import connect

    from jbcalling.client import PcmTrack, SyntheticPeer, ice_servers_of, negotiate_over_signaling

    async with httpx.AsyncClient(timeout=30) as http:
        a, b = [(await http.post(f"{signaling}/api/rooms/{room_id}/join", json={
            "name": name, "speak": "en", "captions": "en", "hear_translation": False})).json()
            for name in ("speaker", "listener")]
    base = signaling.replace("http", "ws", 1) + f"/ws/rooms/{room_id}?token="
    mic = PcmTrack()
    pa = SyntheticPeer("", room_id, a["participant_id"], audio=mic, camera=camera,
                       ice_servers=ice_servers_of(a))
    pb = SyntheticPeer("", room_id, b["participant_id"], camera=camera,
                       ice_servers=ice_servers_of(b))
    events: list[tuple[float, dict[str, Any]]] = []
    sentences: list[dict[str, Any]] = []
    tasks: list[asyncio.Future[None]] = []
    async with connect(base + a["token"]) as wa, connect(base + b["token"]) as wb:

        async def listen() -> None:
            async for raw in wb:
                events.append((time.time(), json.loads(raw)))

        async def drain() -> None:  # the speaker's socket is read too (signaling's keepalive)
            async for _ in wa:
                pass

        try:
            await negotiate_over_signaling(pa, wa)
            # what the listener heard while negotiating (e.g. the speaker's first busy, said
            # once and repeated only every 10 s) counts, at the time it was read
            events.extend((time.time(), ev) for ev in await negotiate_over_signaling(pb, wb))
            tasks = [asyncio.ensure_future(listen()), asyncio.ensure_future(drain())]
            # speech sent before the connection is up (ICE, DTLS) never reaches the gateway:
            # nobody could caption it or say so; speak once media flows
            deadline = time.monotonic() + 60
            while {pa.pc.connectionState, pb.pc.connectionState} & {"new", "connecting"}:
                if time.monotonic() > deadline:
                    raise TimeoutError("media did not connect within 60 s")
                await asyncio.sleep(0.05)
            media_at = time.time()
            await asyncio.sleep(max(0.0, start_at - time.time()))
            for text, pcm in clips:
                onset = mic.play(pcm + bytes(int(48000 * 2 * GAP_S)))
                sentences.append({"text": text, "onset": onset, "end": onset + len(pcm) / 96000})
                await asyncio.sleep(max(0.0, sentences[-1]["end"] + GAP_S - time.time()))
            await asyncio.sleep(TAIL_S)
        finally:
            for task in tasks:
                task.cancel()
            await pa.close()
            await pb.close()
    out = score(a["participant_id"], sentences, events)
    out["media_late_s"] = round(max(0.0, media_at - start_at), 2)  # started speaking this late
    return out


def score(speaker: str, sentences: list[dict[str, Any]],
          events: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Each final goes to the sentence whose audio its ``audio_end_ms`` falls in (or nearest)."""
    finals = [(at, ev) for at, ev in events if ev.get("type") == "caption"
              and ev.get("kind") == "final" and ev.get("speaker") == speaker]
    for s in sentences:
        s["finals"] = []
    for at, ev in finals:
        audio_end = ev["audio_end_ms"] / 1000
        best = min(sentences, key=lambda s: 0 if s["onset"] <= audio_end <= s["end"] + GAP_S
                   else min(abs(audio_end - s["onset"]), abs(audio_end - s["end"])))
        best["finals"].append((at, ev["text"]))
    for s in sentences:
        if s["finals"]:
            s["final_ms"] = round((max(at for at, _ in s["finals"]) - s["end"]) * 1000)
            s["recognized"] = " ".join(text for _, text in s["finals"])
            s["wer"] = round(wer(s["text"], s["recognized"]), 3)
        del s["finals"]
    statuses = [ev for _, ev in events if ev.get("type") == "captions_status"
                and ev.get("speaker") == speaker]
    # A sentence the room was told about (captions busy or unavailable before it ended, and not
    # available again before it began) may be cut: the stream that opens afterwards starts
    # with the newest few seconds the gateway kept.
    timeline = [(at, ev["state"]) for at, ev in events if ev.get("type") == "captions_status"
                and ev.get("speaker") == speaker]
    for s in sentences:
        before = [st for at, st in timeline if at < s["onset"]]
        during = [st for at, st in timeline if s["onset"] <= at <= s["end"] + GAP_S]
        s["told"] = bool((before and before[-1] != "available") or
                         any(st != "available" for st in during))
    return {"sentences": sentences, "busy": sum(1 for e in statuses if e["state"] == "busy"),
            "unavailable": sum(1 for e in statuses if e["state"] == "unavailable"),
            "captioned": sum(1 for s in sentences if "wer" in s)}


def settle(stt: str, timeout_s: float = 60.0) -> None:
    """Wait until the rooms' stt streams have closed, so that the next N starts from none."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not httpx.get(stt + "/ready", timeout=10).json()["load"].get("active_streams"):
            return
        time.sleep(1.0)
    print(f"stt streams still open after {timeout_s:.0f} s", file=sys.stderr)


def pct(values: list[int], q: float) -> int | None:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def rooms_in_process(signaling: str, ids: list[str], clips: list[tuple[str, bytes]],
                     start_at: float, camera: bool) -> list[dict[str, Any] | str]:
    """Some of the rooms, in this (worker) process; a room that failed is its error's text."""
    async def go() -> list[dict[str, Any] | str]:
        outcomes = await asyncio.gather(*(room(signaling, rid, clips, start_at, camera)
                                          for rid in ids), return_exceptions=True)
        return [f"{type(o).__name__}: {o}" if isinstance(o, BaseException) else o
                for o in outcomes]

    return asyncio.run(go())


class StreamsWatch:
    """stt's open streams (``/ready`` load), read every half second while the rooms talk: with
    streams opened only for people who talk, at most one per speaker."""

    def __init__(self, stt: str) -> None:
        self.stt, self.most, self.stop = stt, 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.wait(0.5):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                load = httpx.get(self.stt + "/ready", timeout=5).json()["load"]
                self.most = max(self.most, int(load["streams"]))

    def __enter__(self) -> StreamsWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def run_n(n: int, signaling: str, clips: list[tuple[str, bytes]], camera: bool = False,
          procs: int = 2, stt: str = "") -> dict[str, Any]:
    ids = asyncio.run(create_rooms(signaling, n))
    start_at = time.time() + 3.0 + 0.6 * n  # every room connected before anyone speaks
    # The 2N synthetic participants are spread over ``procs`` processes: in one Python process
    # 16 aiortc peers at N=8 starved on a loaded 2-core machine, and the audio they sent was
    # lost before it reached stt (docs/runbook.md, "Capacity").
    groups = [ids[k::procs] for k in range(procs) if ids[k::procs]]
    with StreamsWatch(stt) as watch, ProcessPoolExecutor(
            len(groups), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = pool.map(rooms_in_process, [signaling] * len(groups), groups,
                         [clips] * len(groups), [start_at] * len(groups), [camera] * len(groups))
        outcomes = [o for part in parts for o in part]
    # a room whose call could not be set up (e.g. no healthy gateway on an overloaded machine)
    # is reported, not scored, and does not end the run
    failed = [o for o in outcomes if isinstance(o, str)]
    rooms = [o for o in outcomes if not isinstance(o, str)]
    shown = [s for r in rooms for s in r["sentences"] if "wer" in s]
    ref_words = sum(len(s["text"].split()) for s in shown)
    whole = [s for s in shown if not s["told"]]
    whole_words = sum(len(s["text"].split()) for s in whole)
    latencies = [s["final_ms"] for s in shown]
    return {
        "rooms": n, "rooms_failed": failed,
        "stt_streams_max": watch.most,  # stt's open streams at most, read every 0.5 s
        "media_late_s": max((r["media_late_s"] for r in rooms), default=0.0),
        "sentences": sum(len(r["sentences"]) for r in rooms),
        "captioned": len(shown),
        "final_p50_ms": round(statistics.median(latencies)) if latencies else None,
        "final_p95_ms": pct(latencies, 0.95),
        # errors weighted by words: the WER of every caption shown, as one text
        "wer_shown": round(sum(s["wer"] * len(s["text"].split()) for s in shown) / ref_words, 3)
        if ref_words else None,
        "wer_worst_sentence": max((s["wer"] for s in shown), default=None),
        # the sentences whose speaker had a stream the whole time (the room told nothing)
        "wer_untold": round(sum(s["wer"] * len(s["text"].split()) for s in whole) / whole_words, 3)
        if whole_words else None,
        "captioned_told": len(shown) - len(whole),
        "uncaptioned_untold": sum(1 for r in rooms for s in r["sentences"]
                                  if "wer" not in s and not s["told"]),
        "speakers_busy": sum(1 for r in rooms if r["busy"]),
        "speakers_without_captions": sum(1 for r in rooms if not r["captioned"]),
        "silent_loss": sum(1 for r in rooms if not r["captioned"] and not r["busy"]),
        "uncaptioned_sentences_without_busy": sum(
            len(r["sentences"]) - r["captioned"] for r in rooms if not r["busy"]),
        "detail": rooms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    parser.add_argument("--label", default="", help="suffix of the result file")
    parser.add_argument("--procs", type=int, default=2, help="processes the rooms' synthetic "
                        "participants are spread over (default 2: one per core of the dev node)")
    parser.add_argument("--camera", action="store_true", help="every participant also sends "
                        "aiortc's synthetic 640x480 VP8 camera (encoded, and decoded by the "
                        "other, in this process: on one small machine it starves the audio)")
    args = parser.parse_args()
    from jbcalling.cli.context import Ctx
    from jbcalling.cli.settings import CliSettings
    from jbcalling.common.audio import resample_to_48k
    from jbcalling.gateway import ice

    ctx = Ctx(CliSettings())
    signaling, tts, stt = (healthy(ctx, s) for s in ("signaling", "tts", "stt"))
    ice.use_host_addresses(["127.0.0.1"])  # the dev stack's gateway answers on loopback
    clips = []
    for text in SENTENCES:
        resp = httpx.post(tts + "/v1/synthesize", json={"lang": "en", "text": text}, timeout=60)
        resp.raise_for_status()
        clips.append((text, resample_to_48k(resp.content, int(resp.headers["X-Sample-Rate"]))))
    stt_load = httpx.get(stt + "/ready", timeout=10).json()["load"]
    doc: dict[str, Any] = {"stt_load": stt_load, "cpus": os.cpu_count(), "runs": []}
    print(f"stt capacity {stt_load.get('capacity_streams')} streams "
          f"({stt_load.get('capacity_source')}); load average {os.getloadavg()}", file=sys.stderr)
    print(f"{'N':>2} {'final p50':>9} {'p95':>6} {'WER':>5} {'untold':>6} {'captioned':>10} "
          f"{'busy':>4} {'silent loss':>11} {'lost untold':>11} {'stt streams':>11}  load",
          file=sys.stderr)
    for n in args.rooms:
        load_before = os.getloadavg()
        run = run_n(n, signaling, clips, args.camera, args.procs, stt)
        run.update({"loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                    "procs": args.procs})
        doc["runs"].append(run)
        for failure in run["rooms_failed"]:
            print(f"   a room failed: {failure}", file=sys.stderr)
        print(f"{n:>2} {run['final_p50_ms']!s:>9} {run['final_p95_ms']!s:>6} "
              f"{run['wer_shown']!s:>5} {run['wer_untold']!s:>6} "
              f"{run['captioned']:>4}/{run['sentences']:<5} {run['speakers_busy']:>4} "
              f"{run['silent_loss']:>11} {run['uncaptioned_untold']:>11} "
              f"{run['stt_streams_max']:>11}  {load_before[0]:.1f}",
              file=sys.stderr)
        settle(stt)
    doc["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=HERE, check=False).stdout.strip()
    out = HERE / "results" / (f"capacity-{args.label}.json" if args.label else "capacity.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"saved {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
