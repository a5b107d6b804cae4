"""The streaming resampler (common/audio.py): pieces of any size, even split samples, give the
same 48 kHz audio as one call over the whole."""

from __future__ import annotations

import numpy as np
import pytest

from jbcalling.common.audio import Resampler48k, resample_to_48k

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("rate", [16000, 22050, 24000])
def test_pieces_join_into_the_same_audio(rate: int) -> None:
    t = np.arange(rate * 2) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16).tobytes()
    whole = resample_to_48k(pcm, rate)
    assert abs(len(whole) // 2 - 96000) <= 2
    r = Resampler48k(rate)
    out, i = b"", 0
    rng = np.random.default_rng(rate)
    while i < len(pcm):
        n = int(rng.integers(1, 9001))  # odd sizes too: a sample split across two pieces
        out += r.feed(pcm[i:i + n])
        i += n
    out += r.flush()
    assert out == whole
