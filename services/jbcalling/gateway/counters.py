"""The gateway's Prometheus collector: what its RTP forwarding counted (gateway/forward_stats.py)
and the live figures (rooms, peers), turned into metrics at scrape time, so that a scrape never
sees figures older than itself.

Packets and bytes are counted where gateway/rtp_forward.py receives and sends them (bytes: RTP
payload bytes, as in RTCP sender reports); ``jb_gateway_forwarded_*`` keep their names and mean
packets and bytes sent to subscribers, ``jb_gateway_forwarded_video_frames`` video frames sent
(the last packet of each frame, once per subscriber that got it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jbcalling.gateway import forward_stats as fs

KINDS = fs.KINDS


class GatewayCollector(Collector):
    """The gateway's ``jb_gateway_*`` metrics. ``live`` returns the figures of the moment:
    ``rooms``, ``peers``, ``forwarded_video_frames``, ``video_paused_streams``."""

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
        yield _totals("jb_gateway_forwarded_packets", "RTP packets sent to subscribers "
                      "(forwarded, never re-encoded)", "sent_packets")
        yield _totals("jb_gateway_forwarded_bytes", "RTP payload bytes sent to subscribers",
                      "sent_bytes")
        yield _totals("jb_gateway_received_packets", "RTP packets received from publishers "
                      "(retransmissions unwrapped)", "received_packets")
        yield _totals("jb_gateway_received_bytes", "RTP payload bytes received from publishers",
                      "received_bytes")
        yield _totals("jb_gateway_retransmitted_packets", "Packets sent again to a subscriber "
                      "that reported them lost (RTCP NACK)", "retransmitted_packets")
        dropped = CounterMetricFamily("jb_gateway_dropped_packets", "Packets not sent to a "
                                      "subscriber, by reason: not_connected (its transport is "
                                      "not up yet or is gone), nack_too_old (a NACK for a packet "
                                      "no longer in the history), nack_repeated (asked again "
                                      "within 100 ms of its last retransmission), "
                                      "nack_over_budget (the subscriber's leg already resent "
                                      "one packet in eight it forwarded), pacer_full (512 "
                                      "packets already waited in the subscriber's pacer)",
                                      labels=["kind", "reason"])
        for (kind, reason), value in sorted(fs.dropped.items()):
            dropped.add_metric([kind, reason], value)
        yield dropped
        yield CounterMetricFamily("jb_gateway_paced_packets", "Packets that waited in their "
                                  "subscriber's pacer (after a burst) instead of leaving at "
                                  "once", value=fs.pacing["queued"])
        yield CounterMetricFamily("jb_gateway_forwarded_video_frames", "Video frames sent to "
                                  "subscribers (one per subscriber that got it)",
                                  value=now["forwarded_video_frames"])
        yield CounterMetricFamily("jb_gateway_keyframe_requests", "Keyframe requests (RTCP PLI) "
                                  "sent to publishers", value=fs.keyframes["sent"])
        relayed = CounterMetricFamily("jb_gateway_keyframe_requests_asked", "Keyframe requests "
                                      "asked for, by whom: relayed (a subscriber's PLI/FIR), "
                                      "subscriber_ready (a subscriber's leg starts), coalesced "
                                      "(inside the per-source interval: merged into the next)",
                                      labels=["reason"])
        for reason in ("relayed", "subscriber_ready", "coalesced"):
            relayed.add_metric([reason], fs.keyframes[reason])
        yield relayed
        yield _by_kind("jb_gateway_encoders_started", "Encoders that encoded a frame (video: "
                       "always 0 while forwarding works; audio: synthesized speech)",
                       fs.encoders_started)

def _totals(name: str, doc: str, key: str) -> CounterMetricFamily:
    return _by_kind(name, doc, {kind: fs.totals[kind][key] for kind in KINDS})


def _by_kind(name: str, doc: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["kind"])
    for kind in KINDS:
        family.add_metric([kind], values[kind])
    return family
