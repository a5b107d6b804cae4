"""The speech track (gateway/speech_track.py) sends silence sparsely (DTX) and speech at once."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from jbcalling.gateway import speech_track
from jbcalling.gateway.speech_track import FRAME_SAMPLES, RATE, SILENCE, SpeechTrack

pytestmark = pytest.mark.unit


def test_silence_goes_out_once_per_dtx_interval_and_speech_ends_the_wait() -> None:
    async def scenario() -> None:
        track = SpeechTrack()
        start = time.monotonic()
        first = await track.recv()
        assert bytes(first) == SILENCE and first.pts == 0
        second = await track.recv()
        waited = time.monotonic() - start
        assert bytes(second) == SILENCE and waited >= speech_track.DTX_INTERVAL - 0.02
        # the timestamp follows the clock over the pause (receivers play silence in between)
        assert second.pts % FRAME_SAMPLES == 0
        assert second.pts >= (speech_track.DTX_INTERVAL - 0.02) * RATE
        assert second.pts <= (time.monotonic() - start) * RATE
        # speech queued during a silent wait goes out at once, not at the end of the interval
        asyncio.get_running_loop().call_later(0.1, track.play,
                                              (np.ones(FRAME_SAMPLES * 3, np.int16) * 8000)
                                              .tobytes())
        asked = time.monotonic()
        speech = await track.recv()
        assert bytes(speech) != SILENCE and time.monotonic() - asked < 0.3
        assert speech.pts >= second.pts + 0.1 * RATE
        # speech and the encoder's tail are sent every 20 ms, back to back in pts
        pts = [speech.pts]
        for _ in range(2 + speech_track.TAIL_FRAMES):
            pts.append((await track.recv()).pts)
        assert np.diff(pts).tolist() == [FRAME_SAMPLES] * (len(pts) - 1)
        track.stop()

    asyncio.run(scenario())
