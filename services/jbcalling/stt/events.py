"""What recognition produces: partial and final results for one utterance (a segment), and
notices about the stream."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Result:
    """One recognition result on a stream.

    ``partial``: the best guess for the open utterance so far (it may still change);
    ``final``: the utterance ended (VAD silence or the recognizer's endpoint) and this is its
    text. Both carry the utterance's ``segment`` number (0, 1, ... per stream) and its span in
    the stream's audio, in ms from the first sample.
    """

    type: Literal["partial", "final"]
    segment: int
    text: str
    lang: str
    start_ms: int
    end_ms: int
    # a partial decoded once the speaker fell quiet: likely the final text, worth translating now
    stable: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Notice:
    """Not a result: ``skipped`` (the stream fell behind; ``dropped_s`` of audio waiting were
    dropped and recognition skips to the next pause) or ``resumed`` (recognition goes on from a
    pause; ``dropped_s``: all the audio dropped during this skip, the first drop included;
    ``skipped_s``: the audio received and passed over to reach the pause)."""

    type: Literal["skipped", "resumed"]
    dropped_s: float = 0.0
    skipped_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "dropped_s": self.dropped_s}
        if self.type == "resumed":
            out["skipped_s"] = self.skipped_s
        return out
