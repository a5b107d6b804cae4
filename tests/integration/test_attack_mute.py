"""A host mute, tried by the muted guest as an attacker would: their client ignores the mute and
keeps sending a loud microphone, and tries to lift the mute with ``settings``.

Everything is real: a jb-gateway process, the signaling app, stt (streaming backend with the
stand-in transducer, which turns a loud tone into caption text) over its own API, Redis, and
aiortc participants on loopback. What the host's peer connection receives on the guest's audio
slot is counted frame by frame, and the room's captions are read on the host's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway_process import start_gateway, stop_gateway
from jbcalling.client import PcmTrack, SyntheticPeer, negotiate_over_signaling
from jbcalling.signaling.app import create_app as create_signaling
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.speech import layout
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings

pytestmark = pytest.mark.integration
QUIET_S = 3.0  # how long the muted guest's loud microphone must reach nobody
SETTLE_S = 0.5  # frames and captions already on their way when the mute took effect


def loud_tone(seconds: float) -> bytes:
    """48 kHz s16le: a warbling tone, loud enough for the stand-in recognizer to write text."""
    t = np.arange(int(48000 * seconds)) / 48000
    wave = 8000 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return wave.astype(np.int16).tobytes()


def test_a_host_muted_guest_reaches_nobody_and_cannot_unmute_themselves(
        redis_url: str, serve: Any, tmp_path: Path, loopback_ice: None) -> None:
    models = tmp_path / "models"
    layout.install_dev_models(models, only={layout.DEV_TRANSDUCER, layout.DEV_VAD})
    spec = f"streaming:{layout.DEV_TRANSDUCER}"
    stt = create_stt(SttSettings(models_dir=models, threads=1, languages={"en": spec, "vi": spec}))
    with serve(stt) as s_stt:
        proc, gateway = start_gateway(redis_url, tmp_path / "gateway.log", urls={"stt": s_stt.url})
        try:
            settings = SignalingSettings(redis_url=redis_url, jwt_secret="k" * 40,
                                         gateway_url=gateway)
            with serve(create_signaling(settings)) as sig:
                asyncio.run(_attack(sig.url, gateway))
            ready = httpx.get(gateway + "/ready", timeout=5).json()
            assert ready["load"]["muted_audio_frames_dropped"] > 0, ready
        finally:
            stop_gateway(proc)


class Socket:
    """A participant's signaling socket, read in the background: every event with its time."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                self.events.append((time.monotonic(), json.loads(raw)))

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def wait(self, match: Any, since: float, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in self.events:
                if at >= since and match(event):
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching event in {timeout} s: "
                             f"{[e for at, e in self.events if at >= since][-10:]}")

    def captions_of(self, speaker: str, since: float) -> list[dict[str, Any]]:
        return [e for at, e in self.events
                if at >= since and e["type"] == "caption" and e["speaker"] == speaker]


async def _attack(signaling: str, gateway: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        created = (await http.post(signaling + "/api/rooms")).json()
        room = created["room_id"]
        host = (await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": "Hana", "speak": "en", "captions": "en", "hear_translation": False,
            "host_key": created["host_key"]})).json()
        guest = (await http.post(f"{signaling}/api/rooms/{room}/join", json={
            "name": "Gus", "speak": "en", "captions": "en", "hear_translation": False})).json()
    hid, gid = host["participant_id"], guest["participant_id"]
    mic = PcmTrack()
    mic.play(loud_tone(60))  # the guest never stops talking, whatever the host does
    host_peer = SyntheticPeer(gateway, room, hid, camera=False)
    guest_peer = SyntheticPeer(gateway, room, gid, audio=mic, camera=False)
    ws_url = signaling.replace("http", "ws") + f"/ws/rooms/{room}?token="
    async with connect(ws_url + host["token"]) as wh, connect(ws_url + guest["token"]) as wg:
        seen = await negotiate_over_signaling(host_peer, wh)
        seen += await negotiate_over_signaling(guest_peer, wg)
        h, g = Socket(wh), Socket(wg)
        start = time.monotonic()
        slots = [e for e in seen if e["type"] == "media_slots" and e["to"] == hid]
        slots += [e for _, e in h.events if e["type"] == "media_slots"]
        if not any(s["participant"] == gid for m in slots for s in m["slots"]):
            slots.append(await h.wait(lambda e: e["type"] == "media_slots" and any(
                s["participant"] == gid for s in e["slots"]), 0))
        mid = next(s["audio_mid"] for m in slots for s in m["slots"] if s["participant"] == gid)

        async def frames_reach(at_least: int) -> None:
            deadline = time.monotonic() + 20
            while host_peer.frames[mid] < at_least and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert host_peer.frames[mid] >= at_least, dict(host_peer.frames)

        # before: the host hears the guest and the room reads captions of the guest
        await frames_reach(25)
        await h.wait(lambda e: e["type"] == "caption" and e["speaker"] == gid, start)

        # the host mutes the guest; the guest's client ignores it and keeps sending
        await h.send({"type": "mute", "target": gid})
        muted = await h.wait(lambda e: e["type"] == "muted" and e["participant"] == gid, start)
        assert muted["by"] == hid and muted.get("muted", True) is True
        await asyncio.sleep(SETTLE_S)
        quiet_from, frames_then = time.monotonic(), host_peer.frames[mid]
        await asyncio.sleep(QUIET_S / 2)
        assert host_peer.frames[mid] == frames_then, "the muted guest's audio was forwarded"
        assert h.captions_of(gid, quiet_from) == [], "captions of the muted guest"

        # the guest claims to be speaking: nobody is told
        await g.send({"type": "speaking", "on": True})
        # the guest tries to lift it: refused, and muting themselves again keeps it a host mute
        await g.send({"type": "settings", "settings": {"muted": False}})
        refused = await g.wait(lambda e: e["type"] == "error", quiet_from)
        assert refused["code"] == "muted_by_host", refused
        await g.send({"type": "settings", "settings": {"muted": True}})
        await g.wait(lambda e: e["type"] == "settings" and e["participant"]["id"] == gid,
                     time.monotonic())
        tried_at = time.monotonic()
        await g.send({"type": "settings", "settings": {"muted": False, "captions": "vi"}})
        again = await g.wait(lambda e: e["type"] == "error", tried_at)
        assert again["code"] == "muted_by_host", again
        state = await h.wait(lambda e: e["type"] == "settings" and e["participant"]["id"] == gid
                             and e["participant"]["captions"] == "vi", quiet_from)
        assert state["participant"]["muted"] is True  # the other setting applied, not the unmute
        assert state["participant"]["muted_by"] == hid

        await asyncio.sleep(max(0.0, quiet_from + QUIET_S - time.monotonic()))
        assert host_peer.frames[mid] == frames_then, "the muted guest's audio was forwarded"
        assert h.captions_of(gid, quiet_from) == [], "captions of the muted guest"
        assert mic.q.pcm, "the guest's microphone stopped sending: the test proves nothing"
        assert not [e for at, e in h.events if at >= quiet_from and e["type"] == "speaking"]

        # only the host lifts it: forwarding and captions come back
        lifted_at = time.monotonic()
        await h.send({"type": "mute", "target": gid, "muted": False})
        await h.wait(lambda e: e["type"] == "muted" and e["muted"] is False, lifted_at)
        await frames_reach(frames_then + 25)
        await h.wait(lambda e: e["type"] == "caption" and e["speaker"] == gid, lifted_at)
        await g.send({"type": "settings", "settings": {"muted": False}})  # now theirs to lift
        await g.wait(lambda e: e["type"] == "settings" and e["participant"]["id"] == gid
                     and not e["participant"]["muted"], lifted_at)
        assert not [e for at, e in g.events if at >= lifted_at and e["type"] == "error"]
        for sock in (h, g):
            sock.task.cancel()
    for peer in (host_peer, guest_peer):
        await peer.close()
