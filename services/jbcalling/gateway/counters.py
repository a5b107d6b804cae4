"""Counts what the gateway encodes, to show that forwarded video is never re-encoded.

aiortc creates an encoder object per sender lazily and only builds a codec context on the first
``encode``; wrapping ``aiortc.rtcrtpsender.get_encoder`` counts those first encodes per kind.
"""

from __future__ import annotations

from typing import Any

from aiortc import rtcrtpsender

encoders_started = {"audio": 0, "video": 0}
_installed = {"done": False}


def install() -> None:
    if _installed["done"]:
        return
    original = rtcrtpsender.get_encoder

    def counting_get_encoder(codec: Any) -> Any:
        encoder = original(codec)
        kind = "video" if codec.mimeType.startswith("video") else "audio"
        real_encode = encoder.encode
        started = {"yes": False}

        def encode(frame: Any, force_keyframe: bool = False) -> Any:
            if not started["yes"]:
                started["yes"] = True
                encoders_started[kind] += 1
            return real_encode(frame, force_keyframe)

        encoder.encode = encode  # type: ignore[method-assign]
        return encoder

    rtcrtpsender.get_encoder = counting_get_encoder
    _installed["done"] = True
