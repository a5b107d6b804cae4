"""Every service's /metrics, built in process: the process collector, the names of
docs/operations.md ("Metrics"), the gateway's caption latency histogram observed at publish
time, and its forwarding counters counted where aiortc packs a forwarded frame."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jbcalling.common.protocol import Caption

pytestmark = pytest.mark.unit
NO_REDIS = "redis://127.0.0.1:1/0"  # refused at once: nothing else is contacted
PROCESS = ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
           "python_gc_collections_total")


@pytest.fixture
def gateway_hooks_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway patches aiortc for the whole process (gateway/rtp_forward.py):
    undone after the test, so that later tests' own aiortc peers still decode."""
    from aiortc import rtcrtpreceiver, rtcrtpsender

    from jbcalling.gateway import rtp_forward

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", rtcrtpreceiver.get_decoder)
    monkeypatch.setattr(rtcrtpsender, "get_encoder", rtcrtpsender.get_encoder)
    monkeypatch.setitem(rtp_forward._installed, "done", rtp_forward._installed["done"])


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _caption(kind: str, lang: str, latency_ms: int, **extra: object) -> Caption:
    end = int(time.time() * 1000) - 5000
    return Caption(kind=kind, speaker="speakerA", speaker_name="An", segment="seg1", lang=lang,
                   text="hello there", start_ms=0, end_ms=900, audio_end_ms=end,
                   emitted_ms=end + latency_ms, **extra)  # type: ignore[arg-type]


def test_gateway_observes_caption_latency_at_publish_and_counts_forwarding(
        gateway_hooks_undone: None) -> None:
    from jbcalling.gateway import forward_stats
    from jbcalling.gateway.app import create_app
    from jbcalling.gateway.settings import GatewaySettings

    app = create_app(GatewaySettings(redis_url=NO_REDIS))
    with TestClient(app) as client:
        publish = app.state.state["pipeline"].publish
        client.portal.call(publish, "roomAAAAAA", _caption("partial", "en", 300))
        client.portal.call(publish, "roomAAAAAA", _caption("final", "en", 700))
        client.portal.call(publish, "roomAAAAAA", _caption("translation", "en", 1200,
                                                           translations={"vi": "xin chào"}))
        # a failed translation has no text in any language: no latency to observe
        client.portal.call(publish, "roomAAAAAA", _caption("translation", "en", 900,
                                                           translation_error="unavailable"))
        # a video frame of three packets that a subscriber's leg sent (gateway/rtp_forward.py)
        sent = dict(forward_stats.totals["video"])
        leg = forward_stats.LegCounts()
        for marker in (0, 0, 1):
            leg.sent("video", 1000, marker)
        samples = _samples(client.get("/metrics").text)

    for name in PROCESS:
        assert any(key[0] == name for key in samples), name
    latency = "jb_caption_latency_seconds"
    assert _value(samples, latency + "_count", kind="partial", source="en", lang="en") == 1
    assert _value(samples, latency + "_count", kind="final", source="en", lang="en") == 1
    assert _value(samples, latency + "_sum", kind="final", source="en", lang="en") == 0.7
    assert _value(samples, latency + "_bucket", kind="final", source="en", lang="en",
                  le="0.5") == 0
    assert _value(samples, latency + "_bucket", kind="final", source="en", lang="en",
                  le="0.75") == 1
    assert _value(samples, latency + "_count", kind="translation", source="en", lang="vi") == 1
    assert _value(samples, latency + "_bucket", kind="translation", source="en", lang="vi",
                  le="10.0") == 1
    assert not any(key[0] == latency + "_count" and ("lang", "en") in key[1]
                   and ("kind", "translation") in key[1] for key in samples)
    assert leg.packets == 3 and leg.bytes == 3000 and leg.frames == 1
    assert _value(samples, "jb_gateway_forwarded_packets_total",
                  kind="video") == sent.get("sent_packets", 0) + 3
    assert _value(samples, "jb_gateway_forwarded_bytes_total",
                  kind="video") == sent.get("sent_bytes", 0) + 3000
    assert _value(samples, "jb_gateway_forwarded_video_frames_total") == \
        sent.get("sent_frames", 0) + 1
    assert _value(samples, "jb_gateway_encoders_started_total", kind="video") == 0
    assert _value(samples, "jb_gateway_rooms") == 0 and _value(samples, "jb_gateway_peers") == 0
    assert ("jb_gateway_keyframe_requests_total", frozenset()) in samples


def _types(app: FastAPI) -> dict[str, str]:
    with TestClient(app) as client:
        text = client.get("/metrics").text
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_stt_mt_and_tts_metrics_are_named_with_units(tmp_path: Path) -> None:
    from jbcalling.mt.app import create_app as mt
    from jbcalling.mt.settings import MtSettings
    from jbcalling.stt.app import create_app as stt
    from jbcalling.stt.settings import SttSettings
    from jbcalling.tts.app import create_app as tts
    from jbcalling.tts.settings import TtsSettings

    # no model in tmp_path: the apps start (not ready) and still expose every metric family
    mt_types = _types(mt(MtSettings(models_dir=tmp_path, redis_url="")))
    tts_types = _types(tts(TtsSettings(models_dir=tmp_path)))
    stt_types = _types(stt(SttSettings(models_dir=tmp_path)))
    for types in (mt_types, tts_types, stt_types):
        assert types["process_cpu_seconds"] == "counter"  # the family of ..._total
        assert types["jb_http_requests"] == "counter"
        assert types["jb_http_request_seconds"] == "histogram"
    assert mt_types["jb_mt_batch_size"] == "histogram"
    assert mt_types["jb_mt_batch_seconds"] == "histogram"
    assert mt_types["jb_mt_request_seconds"] == "histogram"
    assert mt_types["jb_mt_cache_hits"] == "counter"
    assert tts_types["jb_tts_first_audio_seconds"] == "histogram"
    assert tts_types["jb_tts_audio_seconds"] == "counter"
    assert stt_types["jb_stt_decode_seconds"] == "histogram"
    assert stt_types["jb_stt_active_streams"] == stt_types["jb_stt_capacity_streams"] == "gauge"
    assert stt_types["jb_stt_real_time_factor"] == "gauge"
    assert stt_types["jb_stt_audio_received_seconds"] == "counter"
