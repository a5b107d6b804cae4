"""Whether a participant talks, from their decoded 16 kHz audio: at least half of their last
``WINDOW_S`` is in chunks (decoded frames, 20 ms from a browser) whose level (RMS) is above
``level_dbfs``. A speaker's stt stream opens when they talk and ends after a long quiet stretch
(gateway/speaker_stream.py), so that stt's places go to people who talk, not to every
participant whose audio is tapped (docs/decisions.md, "stt streams for people who talk").

Not one sample's peak, nor one window's energy: a click or a pop is loud for a few
milliseconds (one full-scale sample raises a 160 ms window's RMS above -35 dBFS), while speech
holds its level over a syllable (100-200 ms). The window is short enough that the half second
of audio kept before the gate opens (``PREROLL_BYTES``) still holds the first word.
"""

from __future__ import annotations

from collections import deque

import numpy as np

WINDOW_S = 0.16  # the level is judged over this much of the newest audio
HELD = 0.5  # the part of the window that must be loud
TALK_LEVEL_DBFS = -40.0  # a chunk whose RMS is above this is loud
# Audio kept while a participant is quiet and has no stream, sent first when their stream
# opens: the onset of the first word, heard before the gate opened. Not more: stt receives it
# at once with what came while the stream opened, and a stream more than stt's max_backlog_s
# (3 s) behind skips to a pause (with 1 s, tests/integration/test_stt_kill.py's first sentence
# was skipped once at load 10, right after its stream opened; the burst is the likely part).
PREROLL_BYTES = 16000 * 2 // 2


class TalkGate:
    """Fed each chunk of one participant's audio; says whether they talk."""

    def __init__(self, level_dbfs: float = TALK_LEVEL_DBFS, window_s: float = WINDOW_S) -> None:
        # mean square of int16 samples at that level (0 dBFS: a full-scale square wave)
        self.threshold = (32768.0 * 10 ** (level_dbfs / 20)) ** 2
        self.window = int(window_s * 16000)
        self.chunks: deque[tuple[int, bool]] = deque()  # (samples, loud)
        self.samples = 0

    def loud(self, pcm: bytes) -> bool:
        x = np.frombuffer(pcm, np.int16).astype(np.float64)
        if not len(x):
            return False
        self.chunks.append((len(x), float(np.dot(x, x)) / len(x) > self.threshold))
        self.samples += len(x)
        while self.samples - self.chunks[0][0] >= self.window:
            self.samples -= self.chunks.popleft()[0]
        if self.samples < self.window:
            return False
        return sum(n for n, loud in self.chunks if loud) >= HELD * self.samples
