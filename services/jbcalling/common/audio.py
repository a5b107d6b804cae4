"""Audio conversions shared by the gateway and the Python client (16-bit mono PCM)."""

from __future__ import annotations

import av
import numpy as np


class Resampler48k:
    """Mono s16le PCM at ``rate`` Hz to mono s16le at 48 kHz (WebRTC's Opus rate), fed in pieces
    of any size (a streamed body may split a sample: the odd byte waits for the next piece);
    the filter's state carries over, so the pieces join without a click."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._carry = b""
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)

    def feed(self, pcm: bytes) -> bytes:
        data = self._carry + pcm
        cut = len(data) // 2 * 2
        data, self._carry = data[:cut], data[cut:]
        if not data:
            return b""
        frame = av.AudioFrame.from_ndarray(np.frombuffer(data, dtype=np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = self.rate
        return _join(self._resampler.resample(frame))

    def flush(self) -> bytes:
        """The filter's last samples (and nothing more can be fed)."""
        return _join(self._resampler.resample(None))


def _join(frames: list[av.AudioFrame]) -> bytes:
    return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in frames)


def resample_to_48k(pcm: bytes, rate: int) -> bytes:
    """Mono s16le PCM at ``rate`` Hz as mono s16le at 48 kHz."""
    resampler = Resampler48k(rate)
    return resampler.feed(pcm) + resampler.flush()
