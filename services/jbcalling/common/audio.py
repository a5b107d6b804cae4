"""Audio conversions shared by the gateway and the Python client (16-bit mono PCM)."""

from __future__ import annotations

import av
import numpy as np


def resample_to_48k(pcm: bytes, rate: int) -> bytes:
    """Mono s16le PCM at ``rate`` Hz as mono s16le at 48 kHz (WebRTC's Opus rate)."""
    samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    out = resampler.resample(frame) + resampler.resample(None)
    return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in out)
