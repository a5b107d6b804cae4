"""Text handling the speech services share: normalization and sentence splitting."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
# A sentence ends at . ! ? or an ellipsis followed by space; abbreviations such as "Mr." are
# rare in captions and only cost a split, never a lost word.
_END = re.compile(r"(?<=[.!?…])\s+")


def normalize(text: str) -> str:
    """NFC, whitespace collapsed, trimmed: what the cache keys and the engines see."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def sentences(text: str) -> list[str]:
    """Split normalized ``text`` into sentences; never returns an empty string."""
    return [s for s in _END.split(normalize(text)) if s]
