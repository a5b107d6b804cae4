"""Waiting for a room event that a reader task appends to a list (the models tests' listeners)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


async def wait_for(events: list[Event], pred: Callable[[Event], bool],
                   timeout: float) -> Event | None:
    """The first event in ``events`` that ``pred`` accepts, looked for every 0.1 s until
    ``timeout``; None when none came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = next((e for e in events if pred(e)), None)
        if hit is not None:
            return hit
        await asyncio.sleep(0.1)
    return None
