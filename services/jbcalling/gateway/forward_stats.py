"""The arithmetic of RTP forwarding (no aiortc): sequence/timestamp rewriting, Opus durations,
and the counters gateway/counters.py exports.

Totals are process-wide (``totals``: by kind, ``dropped``: by kind and reason); each leg also
keeps its own (:class:`LegCounts`), so that a test can see one subscriber's forwarding stop.
"""

from __future__ import annotations

import time
from collections import Counter

KINDS = ("audio", "video")
totals: dict[str, Counter[str]] = {k: Counter() for k in KINDS}  # received/sent packets, bytes
dropped: Counter[tuple[str, str]] = Counter()  # (kind, reason) -> packets
keyframes: Counter[str] = Counter()  # requests: relayed (a subscriber's), suppressed (rate)
tap_frames: Counter[str] = Counter()  # speech tap: decoded, silent (zeros, not decoded), ...
pacing: Counter[str] = Counter()  # queued: packets that waited for their subscriber's pacer
encoders_started = {"audio": 0, "video": 0}  # video: never (forwarding); audio: speech track


def received(kind: str, size: int) -> None:
    t = totals[kind]
    t["received_packets"] += 1
    t["received_bytes"] += size


class LegCounts:
    """One leg's packets and payload bytes sent, video frames sent, retransmissions, drops."""

    __slots__ = ("bytes", "dropped", "frames", "packets", "resent")

    def __init__(self) -> None:
        self.packets = self.bytes = self.frames = self.resent = self.dropped = 0

    def sent(self, kind: str, size: int, marker: int) -> None:
        self.packets += 1
        self.bytes += size
        t = totals[kind]
        t["sent_packets"] += 1
        t["sent_bytes"] += size
        if marker and kind == "video":  # the last packet of a frame
            self.frames += 1
            t["sent_frames"] += 1

    def retransmitted(self, kind: str) -> None:
        self.resent += 1
        totals[kind]["retransmitted_packets"] += 1

    def drop(self, kind: str, reason: str) -> None:
        self.dropped += 1
        dropped[(kind, reason)] += 1


class Rewriter:
    """Maps a source's sequence numbers and timestamps into one subscriber slot's own series.

    When the slot's source changes, the new source's packets continue right after the last one
    sent (next sequence number, timestamp advanced by the wall-clock time in between). When the
    same source resumes after a pause of this slot (its video hidden, its audio muted), the
    sequence numbers close the gap of the packets this subscriber was never sent (else it would
    ask for each of them again, NACK); the timestamps keep the source's own, which went on with
    time. A short stall of the gateway itself, or a packet or two lost upstream, changes
    nothing: those gaps are real, and a new offset in the middle of a frame would split it."""

    PAUSE = 0.5  # seconds without a packet to this slot (a source sends video every ~33 ms)
    SKIPPED = 32  # and at least this many of the source's packets in between

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.seq_offset = self.ts_offset = 0
        self.last_seq = self.last_ts = 0
        self.last_time = 0.0

    def map(self, ssrc: int, seq: int, timestamp: int,
            now: float | None = None) -> tuple[int, int]:
        """``now``: time.monotonic(), read once per source packet by the caller (else here)."""
        if now is None:
            now = time.monotonic()
        if ssrc != self.ssrc:
            gap = max(1, int((now - self.last_time) * self.clock_rate))
            next_seq = (self.last_seq + 1) if self.ssrc is not None else seq
            next_ts = (self.last_ts + gap) if self.ssrc is not None else timestamp
            self.seq_offset, self.ts_offset, self.ssrc = next_seq - seq, next_ts - timestamp, ssrc
            self.last_seq, self.last_ts = (next_seq - 1) & 0xFFFF, next_ts & 0xFFFFFFFF
        elif (now - self.last_time > self.PAUSE
              and self.SKIPPED <= ((seq + self.seq_offset - self.last_seq) & 0xFFFF) < 0x8000):
            self.seq_offset = self.last_seq + 1 - seq
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (timestamp + self.ts_offset) & 0xFFFFFFFF
        # the newest packet so far (modulo wrap-around) is where a next source continues
        if ((out_seq - self.last_seq) & 0xFFFF) < 0x8000:
            self.last_seq, self.last_ts, self.last_time = out_seq, out_ts, now
        return out_seq, out_ts


# Opus frame durations in 48 kHz samples by TOC configuration (RFC 6716, section 3.1)
_SILK = (480, 960, 1920, 2880)
_HYBRID = (480, 960)
_CELT = (120, 240, 480, 960)


def opus_samples(packet: bytes) -> int:
    """Samples (48 kHz) an Opus packet covers, from its TOC byte; 20 ms if it has none."""
    if not packet:
        return 960
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        per_frame = _SILK[config % 4]
    elif config < 16:
        per_frame = _HYBRID[config % 2]
    else:
        per_frame = _CELT[config % 4]
    frames = 1 if code == 0 else 2 if code in (1, 2) else (packet[1] & 0x3F if len(packet) > 1
                                                          else 1)
    return per_frame * max(1, frames)
