"""Pausing the video of tiles a participant cannot see, for real: a jb-gateway process, signaling
in this process, three aiortc peers negotiated over signaling's WebSocket like the page.

Binh sends video, An and Cara listen and watch (one encoder in this process). An hides Binh's
tile (``video_visibility``): the gateway stops forwarding Binh's video to An (An's frame counter
for Binh stays flat over 2 s) while Binh's and Cara's audio still reach An and Cara still
receives Binh's video. An shows the tile again: the gateway asks Binh for a keyframe and
An decodes a new frame of Binh's within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from signaling_client import join, room, settings_for, socket

from gateway_process import start_gateway, stop_gateway
from jbcalling.client import SyntheticPeer, negotiate_over_signaling
from jbcalling.signaling.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("loopback_ice")]


@pytest.fixture
def gateway(redis_url: str, tmp_path: Path) -> Iterator[str]:
    proc, url = start_gateway(redis_url, tmp_path / "gateway.log", max_peers="4", max_rooms="2")
    yield url
    stop_gateway(proc)


async def _until(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(0.1)
    return False


async def _read(ws: Any, into: list[dict[str, Any]]) -> None:
    with contextlib.suppress(Exception):  # the socket closes at the end
        async for raw in ws:
            into.append(json.loads(raw))


def _mids(events: list[dict[str, Any]], source: str) -> tuple[str, str]:
    """(audio mid, video mid) of ``source`` at the participant who received ``events``."""
    slots = [e for e in events if e["type"] == "media_slots"][-1]["slots"]
    slot = next(s for s in slots if s["participant"] == source)
    return slot["audio_mid"], slot["video_mid"]


def test_hidden_tile_video_pauses_and_comes_back_with_a_keyframe(gateway: str, redis_url: str,
                                                                   serve: Any) -> None:
    settings = settings_for(redis_url, gateway_url=gateway)

    async def scenario(url: str) -> None:
        made = room(url)
        rid = made["room_id"]
        seats = [join(url, rid, name, made["host_key"] if name == "An" else None)
                 for name in ("An", "Binh", "Cara")]
        an, binh, cara = (s["participant_id"] for s in seats)
        events: dict[str, list[dict[str, Any]]] = {an: [], binh: [], cara: []}
        async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as http:
            peers, sockets, readers = {}, {}, []
            for seat in seats:
                pid = seat["participant_id"]
                ws = await stack.enter_async_context(socket(url, rid, seat["token"]))
                # only Binh sends video: one encoder, two decoders (a loaded machine's test
                # process must keep up with the frame rate the bound is about)
                peers[pid] = SyntheticPeer(gateway, rid, pid, camera=pid == binh)
                sockets[pid] = ws
                events[pid] += await negotiate_over_signaling(peers[pid], ws)
                readers.append(asyncio.ensure_future(_read(ws, events[pid])))

            async def everyone_sees_binh() -> bool:
                return all(p.receiving("video", 10) == 1 and p.receiving("audio", 20) == 2
                           for pid, p in peers.items() if pid != binh)
            assert await _until(everyone_sees_binh, 40), [p.frames for p in peers.values()]
            b_audio, b_video = _mids(events[an], binh)
            c_audio, _ = _mids(events[an], cara)
            _, b_video_at_cara = _mids(events[cara], binh)

            async def load() -> dict[str, Any]:
                return dict((await http.get(gateway + "/ready")).json()["load"])

            async def metric(name: str) -> float:
                text = (await http.get(gateway + "/metrics")).text
                return float(next(line.split()[-1] for line in text.splitlines()
                                  if line.startswith(name + " ")))

            # An's page hides Binh's tile.
            await sockets[an].send(json.dumps({"type": "video_visibility", "hidden": [binh]}))

            async def paused(n: int) -> bool:
                return (await load())["video_paused_streams"] == n
            assert await _until(lambda: paused(1), 5), await load()
            assert await metric("jb_gateway_video_paused_streams") == 1
            a, c = peers[an], peers[cara]
            # frames already on their way to An (and in An's decoder, late on a loaded machine)
            # come out first: from when An's count for Binh has stopped for 1 s, it stays flat
            settled, last, since = time.monotonic() + 10, -1, time.monotonic()
            while time.monotonic() < settled and time.monotonic() - since < 1.0:
                if a.frames[b_video] != last:
                    last, since = a.frames[b_video], time.monotonic()
                await asyncio.sleep(0.1)
            before = (a.frames[b_video], a.frames[c_audio], a.frames[b_audio],
                      c.frames[b_video_at_cara])
            await asyncio.sleep(2)
            after = (a.frames[b_video], a.frames[c_audio], a.frames[b_audio],
                     c.frames[b_video_at_cara])
            assert after[0] == before[0], ("Binh's video still reaches An", before, after)
            assert after[1] >= before[1] + 20, ("Cara's audio to An stopped", before, after)
            assert after[2] >= before[2] + 20, ("Binh's audio to An stopped", before, after)
            assert after[3] >= before[3] + 10, ("Binh's video to Cara stopped", before, after)

            # Shown again: a keyframe request goes to Binh and An decodes his video within 1 s.
            keyframes = await metric("jb_gateway_keyframe_requests_total")
            shown_at = time.monotonic()
            await sockets[an].send(json.dumps({"type": "video_visibility", "hidden": []}))

            async def flowing() -> bool:  # a picture again: An decoded a new frame of Binh's
                return a.frames[b_video] > after[0]
            assert await _until(flowing, 5), (a.frames, after)
            took = time.monotonic() - shown_at
            print(f"\nBinh's video back at An {took:.2f} s after the tile showed again")
            assert took < 1.0, took
            assert await metric("jb_gateway_keyframe_requests_total") > keyframes
            assert (await load())["video_paused_streams"] == 0
            assert not [e for e in events[an] if e["type"] == "error"], events[an]
            for r in readers:
                r.cancel()
            for p in peers.values():
                await p.close()

    with serve(create_app(settings)) as srv:
        asyncio.run(scenario(srv.url))
