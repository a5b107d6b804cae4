"""Spoken translation, streamed: tts's response goes into the listeners' speech tracks as it comes.

tts answers ``POST /v1/synthesize`` sentence by sentence (tts/app.py yields each sentence's PCM as
it is synthesized), so the first sentence plays while the next is still being synthesized: the
first translated audio no longer waits for the whole translation (issue 12; numbers in
docs/runbook.md, "Spoken translation", from benchmarks/speech_playback_bench.py).

Each listener's page is told with ``protocol.Speech`` events: the first as soon as audio is
queued, then another whenever at least ``ANNOUNCE_EVERY_S`` more is queued and one at the end;
each says how long the translation plays from its ``emitted_ms`` (``duration_ms``), which the
page uses to duck the original voices (a later event extends the earlier one).

tts unreachable or failing before any audio: a ``SpeechStatus`` to each listener, captions go on.
Failing midway: what was queued plays, the rest is lost, and a warning is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import httpx
import numpy as np

from jbcalling.common.audio import Resampler48k
from jbcalling.common.discovery import Discovery, NoInstance
from jbcalling.common.protocol import Caption, Participant, Publish, Speech, SpeechStatus
from jbcalling.gateway.speech_track import SpeechTrack

log = logging.getLogger("jbcalling.gateway.translated_speech")
ANNOUNCE_EVERY_S = 0.5  # a new Speech event once this much more audio is queued


def now_ms() -> int:
    return int(time.time() * 1000)


class TranslatedSpeech:
    def __init__(self, discovery: Discovery, http: httpx.AsyncClient, publish: Publish,
                 people: Callable[[str], Awaitable[dict[str, Participant]]],
                 speech_targets: Callable[[str], dict[str, SpeechTrack]]) -> None:
        self.discovery = discovery
        self.http = http
        self.publish = publish
        self.people = people
        self.speech_targets = speech_targets

    async def speak(self, room: str, caption: Caption, lang: str, text: str) -> None:
        """Play ``text`` (the translation of ``caption`` into ``lang``) to every listener who
        reads ``lang`` and asked to hear the translation."""
        people = await self.people(room)
        listeners = [pid for pid, p in people.items()
                     if pid != caption.speaker and p.hear_translation and p.captions == lang]
        tracks = self.speech_targets(room)
        targets = [tracks[pid] for pid in listeners if pid in tracks]
        if not targets:
            return
        announced = 0.0  # seconds of audio queued when the last event went out

        async def announce(queued_s: float, peak: int, final: bool) -> None:
            nonlocal announced
            if not final and announced and queued_s - announced < ANNOUNCE_EVERY_S:
                return
            if final and queued_s == announced:
                return
            announced = queued_s
            await self.publish(room, Speech(
                segment=caption.segment, speaker=caption.speaker, lang=lang,
                listeners=listeners, emitted_ms=now_ms(), audio_end_ms=caption.audio_end_ms,
                duration_ms=max(t.queued_ms for t in targets), peak=peak))

        try:
            url = await self.discovery.pick("tts")
            await self._stream(url, lang, text, targets, announce)
        except (NoInstance, httpx.HTTPError, ValueError) as exc:
            self.discovery.forget("tts")
            if announced:
                log.warning("speech cut short: tts failed midway", extra={"error": str(exc)})
                return
            log.warning("speech unavailable", extra={"error": str(exc)})
            for pid in listeners:
                await self.publish(room, SpeechStatus(to=pid, lang=lang, segment=caption.segment))

    async def _stream(self, url: str, lang: str, text: str, targets: list[SpeechTrack],
                      announce: Callable[[float, int, bool], Awaitable[None]]) -> None:
        async with self.http.stream("POST", url + "/v1/synthesize",
                                    json={"lang": lang, "text": text}) as resp:
            if resp.status_code != 200:
                raise ValueError(f"tts answered {resp.status_code}")
            resampler = Resampler48k(int(resp.headers.get("X-Sample-Rate", "22050")))
            queued = 0.0
            peak = 0
            async for chunk in resp.aiter_bytes():
                audio = resampler.feed(chunk)
                if not audio:
                    continue
                for track in targets:
                    track.play(audio)
                queued += len(audio) / 2 / 48000
                peak = max(peak, _peak(audio))
                await announce(queued, peak, False)
            tail = resampler.flush()
            for track in targets:
                track.play(tail)
            queued += len(tail) / 2 / 48000
            await announce(queued, max(peak, _peak(tail)), True)


def _peak(pcm: bytes) -> int:
    return int(np.abs(np.frombuffer(pcm, np.int16).astype(np.int32)).max(initial=0))
