"""The speech tap: each speaker's decoded audio, resampled once to 16 kHz mono s16le.

Each speaker's audio is decoded on the event loop (gateway/tap_decoding.py), which calls
:meth:`Taps.feed`; the PCM goes at once to the speaker's consumer (the pipeline's stt stream).
"""

from __future__ import annotations

from collections.abc import Callable

import av

Consumer = Callable[[str, str, bytes], None]  # (room, participant, pcm16k)


class Taps:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.resamplers: dict[tuple[str, str], av.AudioResampler] = {}

    def feed(self, room: str, pid: str, frame: av.AudioFrame) -> None:
        """Called on the event loop with a 48 kHz frame."""
        key = (room, pid)
        resampler = self.resamplers.get(key)
        if resampler is None:
            resampler = self.resamplers[key] = av.AudioResampler(format="s16", layout="mono",
                                                                 rate=16000)
        pcm = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))
        if pcm:
            self.consumer(room, pid, pcm)

    def forget(self, room: str, pid: str) -> None:
        self.resamplers.pop((room, pid), None)
