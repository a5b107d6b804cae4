"""What the gateway sends, counted where aiortc does it, and the gateway's Prometheus collector.

Counted by wrapping aiortc 1.16 functions once per process (``install``), since aiortc has no
hook for them:

- ``aiortc.rtcrtpsender.get_encoder``: each sender's codec object. Its first ``encode`` counts an
  encoder started (forwarded media never encodes: tests/integration/test_gateway_forwarding.py);
  each ``pack`` is one forwarded frame, already encoded, cut into RTP payloads: those payloads
  are the forwarded packets and bytes (RTP payload bytes, as in the sender's RTCP sender reports;
  synthesized speech is encoded, not packed, so it is not counted as forwarded).
- ``RTCRtpReceiver._send_rtcp_pli``: every keyframe request (RTCP PLI) the gateway sends to a
  publisher: when a subscriber joins, when a subscriber asks (relayed by gateway/passthrough.py)
  and when aiortc's receiver itself sees video loss.

:class:`GatewayCollector` turns these and the live figures (rooms, peers) into metrics at scrape
time, so a scrape never sees figures older than itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiortc import rtcrtpreceiver, rtcrtpsender
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

KINDS = ("audio", "video")
encoders_started = {"audio": 0, "video": 0}
forwarded_packets = {"audio": 0, "video": 0}
forwarded_bytes = {"audio": 0, "video": 0}
keyframe_requests = {"sent": 0}
_installed = {"done": False}


def install() -> None:
    if _installed["done"]:
        return
    original = rtcrtpsender.get_encoder

    def counting_get_encoder(codec: Any) -> Any:
        encoder = original(codec)
        kind = "video" if codec.mimeType.startswith("video") else "audio"
        real_encode, real_pack = encoder.encode, encoder.pack
        started = {"yes": False}

        def encode(frame: Any, force_keyframe: bool = False) -> Any:
            if not started["yes"]:
                started["yes"] = True
                encoders_started[kind] += 1
            return real_encode(frame, force_keyframe)

        def pack(packet: Any) -> Any:
            payloads, timestamp = real_pack(packet)
            forwarded_packets[kind] += len(payloads)
            forwarded_bytes[kind] += sum(len(p) for p in payloads)
            return payloads, timestamp

        encoder.encode = encode  # type: ignore[method-assign]
        encoder.pack = pack  # type: ignore[method-assign]
        return encoder

    real_pli = rtcrtpreceiver.RTCRtpReceiver._send_rtcp_pli

    async def counting_pli(self: Any, media_ssrc: int) -> None:
        keyframe_requests["sent"] += 1
        await real_pli(self, media_ssrc)

    rtcrtpsender.get_encoder = counting_get_encoder
    rtcrtpreceiver.RTCRtpReceiver._send_rtcp_pli = counting_pli  # type: ignore[method-assign]
    _installed["done"] = True


class GatewayCollector(Collector):
    """The gateway's ``jb_gateway_*`` metrics. ``live`` returns the figures of the moment:
    ``rooms``, ``peers``, ``forwarded_video_frames`` (gateway/passthrough.py's count)."""

    def __init__(self, live: Callable[[], Mapping[str, int]]) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        now = self.live()
        yield GaugeMetricFamily("jb_gateway_rooms", "Rooms with at least one peer connection",
                                value=now["rooms"])
        yield GaugeMetricFamily("jb_gateway_peers", "Peer connections (participants' media)",
                                value=now["peers"])
        yield GaugeMetricFamily("jb_gateway_video_paused_streams", "Subscriber/source pairs "
                                "whose video is paused (a tile the subscriber's page does not "
                                "show)", value=now.get("video_paused_streams", 0))
        yield _by_kind("jb_gateway_forwarded_packets", "RTP packets forwarded without "
                       "re-encoding", forwarded_packets)
        yield _by_kind("jb_gateway_forwarded_bytes", "RTP payload bytes forwarded without "
                       "re-encoding", forwarded_bytes)
        yield CounterMetricFamily("jb_gateway_forwarded_video_frames", "Video frames forwarded "
                                  "without decoding", value=now["forwarded_video_frames"])
        yield CounterMetricFamily("jb_gateway_keyframe_requests", "Keyframe requests (RTCP PLI) "
                                  "sent to publishers", value=keyframe_requests["sent"])
        yield _by_kind("jb_gateway_encoders_started", "Encoders that encoded a frame (video: "
                       "always 0 while forwarding works; audio: synthesized speech)",
                       encoders_started)


def _by_kind(name: str, doc: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["kind"])
    for kind in KINDS:
        family.add_metric([kind], values[kind])
    return family
