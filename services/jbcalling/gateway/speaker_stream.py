"""One participant's stream to stt: opened when they talk and ended after a long quiet stretch,
the audio in, the results out as captions, the reconnects and hand-overs (the data path and its
guarantees: gateway/pipeline.py's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from jbcalling.common.discovery import NoInstance
from jbcalling.common.protocol import Caption, Participant, other, room_key
from jbcalling.gateway.captions_status import TALKING_RECENT_S, SpeakerStatus
from jbcalling.gateway.speech_gate import PREROLL_BYTES, TalkGate
from jbcalling.gateway.stt_leg import BYTES_PER_S, Busy, Leg, now_ms

if TYPE_CHECKING:
    from jbcalling.gateway.pipeline import Pipeline

log = logging.getLogger("jbcalling.gateway.pipeline")
# Audio held while stt is away, replayed when the stream opens again: enough for the speech
# between stt answering again and the stream opening (the reconnect waits at most 0.5 s while
# the speaker talks). Not more: a restarted stt must decode the whole replay before it reaches
# live speech, and with 6 or 10 s on a loaded 2-core machine it fell more than its
# max_backlog_s behind and closed the stream (1013), losing the sentences after it (issue 9).
MAX_BUFFER_BYTES = 16000 * 2 * 3
OPEN_TIMEOUT_S = 5.0  # opening a stream to a healthy instance
# An open stream whose audio stt's host has not acknowledged for this long is lost (the
# socket's TCP_USER_TIMEOUT): a powered-off node or a cut link says nothing (no FIN, no RST),
# and without it the stream waited on its full send buffer until websockets' keepalive, 60 s
# and more, while the room was told nothing (tests/models/test_stt_node_lost.py). A live host's
# kernel acknowledges within milliseconds even when stt itself lags; a quiet stream is covered
# by websockets' keepalive ping every 20 s.
ACK_TIMEOUT_S = 5.0
UNLISTED_TIMEOUT_S = 2.0  # ... to the instance the stream used, not (yet) healthy in Consul
REFRESH_S = 0.5  # every speaker's stream fails at once when stt stops: one Consul query for all
# How often a speaker's stream checks the language they speak (the participant record in Redis,
# changed by signaling on a `settings` message): a change hands the stream over to a new one in
# the new language, like the session limit does, so the next caption is in the new language.
SPEAK_CHECK_S = 1.0
# A participant's stream ends after this long without speech (JB_GATEWAY_STT_QUIET_CLOSE_S):
# long enough that a speaker pausing between sentences keeps their place, short enough that
# someone who stopped talking gives it to the next speaker within a sentence or two.
QUIET_CLOSE_S = 20.0
STT_END = '{"type": "end"}'  # stt's own control message (stt/app.py), not a room event
BUSY_CODES = ("busy", "backlog")  # stt's refusals for lack of capacity (stt/app.py)


class SpeakerStream(SpeakerStatus):
    """One participant's sticky stream to an stt instance, open while they talk; reconnects
    when it drops."""

    def __init__(self, pipeline: Pipeline, room: str, pid: str, gate: TalkGate | None = None,
                 quiet_close_s: float = QUIET_CLOSE_S) -> None:
        super().__init__(pipeline, room, pid)
        self.gate = gate or TalkGate()
        self.quiet_close_s = quiet_close_s
        # set when the participant talks; cleared while they are quiet with no stream (their
        # audio is then kept only for PREROLL_BYTES, the rest dropped as "quiet")
        self.wanted = asyncio.Event()
        # (PCM, wall ms when it arrived): a replay after an outage keeps its place in time
        self.queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self.queued = 0
        self.task: asyncio.Task[None] | None = None
        self.epoch = 0
        self.url = ""  # the stt instance the stream is sticky to
        self.audio_came = asyncio.Event()  # set by push: an idle-closed stream reopens on it
        self.cut = False  # audio was dropped since the last stream: the next one starts mid-speech

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def push(self, pcm: bytes) -> None:
        self.queue.put_nowait((pcm, now_ms()))
        self.audio_came.set()
        self.queued += len(pcm)
        if self.gate.loud(pcm):
            now = time.monotonic()
            if now - self.talked_at >= TALKING_RECENT_S:
                self.talk_started.set()
            self.talked_at = now
            self.wanted.set()
        wanted = self.wanted.is_set()
        # no stream open: keep only the latest audio (quiet: the half second before a word)
        while self.queued > (MAX_BUFFER_BYTES if wanted else PREROLL_BYTES):
            lost = len(self.queue.get_nowait()[0])
            self.queued -= lost
            if not wanted:  # not speech: the next stream need not start from a pause
                self.dropped("quiet", lost / BYTES_PER_S)
                continue
            self.cut = True
            self.dropped(("busy" if self.state == "backlog" else self.state) if self.down
                         else "opening", lost / BYTES_PER_S)

    def quiet_for(self) -> float:
        """Seconds since the participant last talked."""
        return time.monotonic() - self.talked_at

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        me: Participant | None = None
        while True:
            # A quiet participant holds no stream; one whose captions were said to be paused is
            # retried even when quiet, so that the room hears when they are back.
            if not self.down and self.quiet_for() >= self.quiet_close_s:
                self.wanted.clear()
                await self.wanted.wait()
            try:  # the speaker's settings; on a Redis hiccup the last ones known
                me = (await self.p.people(self.room)).get(self.pid)
            except (aioredis.RedisError, OSError) as exc:
                log.warning("cannot read the room's people; retrying", extra={"error": str(exc)})
            lang = me.speak if me else "en"
            leg = None
            try:
                ws, ready = await self._open(lang)
                self.epoch += 1
                leg = Leg(self.epoch)
                await self._result(ready, me, lang, leg)
                if await self._session(ws, me, lang, leg):
                    continue  # handed over (the next stream opens at once), or quiet
                if leg.closed == "idle":  # no audio came for a while: wait for some
                    self.audio_came.clear()
                    if self.queue.empty():
                        await self.audio_came.wait()
                else:
                    await asyncio.sleep(0.1)  # stt closed the stream normally: open another
            except Busy as exc:
                await self._down(str(exc), "busy")
            except (NoInstance, OSError, WebSocketException, TimeoutError) as exc:
                if leg is not None and leg.error in BUSY_CODES:  # stt closed it for capacity
                    await self._down(str(exc), "busy" if leg.error == "busy" else "backlog")
                    continue
                self.p.discovery.forget("stt", REFRESH_S)
                await self._down(str(exc))
            except Exception:  # a bug must not end this speaker's captions for the whole call
                log.exception("speaker stream failed; starting it again")
                await self._down("internal error")

    async def _candidates(self) -> list[tuple[str, float]]:
        """Where to open the stream, in order, with the time each may take: the instance the
        stream used if it is healthy (sticky), the other healthy ones, and last the one it used
        even when Consul does not list it: a restarted stt answers a second or more before its
        next Consul check passes."""
        try:
            healthy = await self.p.discovery.urls("stt")
        except NoInstance:
            if not self.url:
                raise
            healthy = []
        order = sorted(healthy, key=lambda u: (u != self.url, random.random()))
        out = [(u, OPEN_TIMEOUT_S) for u in order]
        if self.url and self.url not in healthy:
            out.append((self.url, UNLISTED_TIMEOUT_S))
        return out

    async def _open(self, lang: str) -> tuple[Any, dict[str, Any]]:
        """A stream whose instance said ``ready`` (returned with it); an instance that refuses
        it for lack of capacity passes the speaker on to the next. :class:`Busy` when none had
        room, :class:`NoInstance` when none answered at all."""
        errors: list[str] = []
        busy: list[str] = []
        cut = self.cut
        for url, timeout in await self._candidates():
            ws_url = url.replace("http", "ws", 1) + f"/v1/stream?lang={lang}" + \
                ("&from_pause=1" if cut else "")
            ws = None
            try:
                ws = await connect(ws_url, open_timeout=timeout, max_size=2**20)
                ws.transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(ACK_TIMEOUT_S * 1000))
                first = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            except (OSError, WebSocketException, TimeoutError, ValueError) as exc:
                errors.append(f"{url}: {exc or type(exc).__name__}")
                if ws is not None:
                    await ws.close()
                continue
            if first.get("type") == "ready":
                self.url = url
                self.cut = False
                return ws, first
            await ws.close()
            (busy if first.get("code") in BUSY_CODES else errors).append(
                f"{url}: {first.get('message', first)}")
        if busy:
            raise Busy("; ".join(busy + errors))
        raise NoInstance("; ".join(errors) or "no healthy stt instance in Consul")

    async def _session(self, ws: Any, me: Participant | None, lang: str, leg: Leg) -> bool:
        """Send the speaker's audio on ``ws`` and publish its results; True when the gateway
        ended the stream (hand-over, or the speaker was quiet for ``quiet_close_s``: its last
        results come in the background), False when stt closed it."""
        async def send() -> None:
            # checked before taking a chunk: none is lost
            while not leg.hand_over() and self.quiet_for() < self.quiet_close_s:
                if self.queue.empty():  # a muted participant sends nothing: the quiet still ends
                    self.audio_came.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.audio_came.wait(),
                                               self.quiet_close_s - self.quiet_for() + 0.05)
                    continue
                chunk, arrived_ms = self.queue.get_nowait()
                self.queued -= len(chunk)
                if not leg.started_wall_ms:  # 32 bytes a millisecond
                    leg.started_wall_ms = arrived_ms - len(chunk) // 32
                leg.sent += len(chunk)
                await ws.send(chunk)

        async def receive() -> None:
            async for raw in ws:
                await self._result(json.loads(raw), me, lang, leg)

        async def watch() -> None:  # "I speak" may change during the call
            key = room_key(self.room, "people")
            while not leg.switch:
                await asyncio.sleep(SPEAK_CHECK_S)
                with contextlib.suppress(aioredis.RedisError, OSError, ValueError, TypeError):
                    raw = await self.p.redis.hget(key, self.pid)
                    leg.switch = raw is not None and Participant.parse(raw).speak != lang

        sender = asyncio.ensure_future(send())
        receiver = asyncio.ensure_future(receive())
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and sender.exception() is None and not receiver.done():
                if not leg.hand_over():
                    log.info("speaker quiet; their stt stream ends", extra={
                        "room": self.room, "speaker": self.pid,
                        "quiet_s": round(self.quiet_for(), 1)})
                await ws.send(STT_END)  # stt flushes, then closes
                self.p.spawn(self._drain(ws, receiver))
                return True
            # The stream ends: stt closed it, and sending may have failed on the closed socket
            # first; how stt closed it (the receiver: normally or not) is what counts.
            if not receiver.done():
                await asyncio.wait({receiver}, timeout=OPEN_TIMEOUT_S)
            await (receiver if receiver.done() else sender)
            return False
        except BaseException:
            receiver.cancel()
            await ws.close()
            raise
        finally:
            sender.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                await sender

    async def _drain(self, ws: Any, receiver: asyncio.Future[None]) -> None:
        """The last results of a stream that handed over, until stt closes it."""
        try:
            await asyncio.wait_for(receiver, OPEN_TIMEOUT_S + 30)
        except (WebSocketException, OSError, TimeoutError) as exc:
            log.warning("a handed-over stt stream ended badly", extra={"error": str(exc)})
        finally:
            await ws.close()

    async def _result(self, res: dict[str, Any], me: Participant | None, lang: str,
                      leg: Leg) -> None:
        if res.get("type") == "ready":
            await self._up()
            leg.max_bytes = int(float(res.get("max_session_s") or 0) * BYTES_PER_S)
        if res.get("type") == "closed":
            leg.closed = str(res.get("reason", ""))
        if res.get("type") == "error":
            leg.error = str(res.get("code", ""))
            if leg.error == "backlog":  # an stt that closes a stream that fell behind
                self.dropped("backlog", float(res.get("dropped_s") or 0))
        if res.get("type") == "skipped":  # fell behind: stt dropped what waited
            await self._behind()
        if res.get("type") == "resumed":  # recognizing again, from a pause; what the skip lost
            self.dropped("backlog", float(res.get("dropped_s") or 0))
            self.dropped("to_pause", float(res.get("skipped_s") or 0))
            await self._up()
        if res.get("type") == "partial":
            leg.talking = True
        elif res.get("type") == "final":
            leg.talking = False
        if res.get("type") not in ("partial", "final") or not str(res.get("text", "")).strip():
            return
        if res.get("stable") and res["type"] == "partial":  # likely the final: translate now
            source = res.get("lang", lang)
            leg.early = {res["text"]: asyncio.ensure_future(
                self.p.translate(source, other(source), res["text"]))}
        caption = Caption(kind=res["type"], speaker=self.pid, speaker_name=me.name if me else "",
                          segment=f"{leg.epoch}:{res['segment']}", lang=res.get("lang", lang),
                          text=res["text"], start_ms=res["start_ms"], end_ms=res["end_ms"],
                          audio_end_ms=leg.started_wall_ms + int(res["end_ms"]),
                          emitted_ms=now_ms())
        await self.p.publish(self.room, caption)
        if res["type"] == "final":
            early = leg.early.pop(res["text"], None)
            for unused in leg.early.values():
                unused.cancel()
            leg.early = {}
            self.p.spawn(self.p.on_final(self.room, me, caption, early))

