"""signaling's /metrics (services/jbcalling/signaling/metrics.py), app in process, real Redis:
rooms and sockets while a participant is connected, rooms created, joins, refusals by reason."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.websockets import WebSocketDisconnect

from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings

pytestmark = pytest.mark.integration


def _metrics(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_rooms_sockets_joins_and_refusals_by_reason(redis_url: str) -> None:
    app = create_app(SignalingSettings(redis_url=redis_url, jwt_secret="m" * 40))
    with TestClient(app) as client:
        room = client.post("/api/rooms").json()["room_id"]
        person = client.post(f"/api/rooms/{room}/join",
                             json={"name": "An", "speak": "en", "captions": "vi"}).json()
        missing = client.post("/api/rooms/" + "x" * 22 + "/join",
                              json={"name": "Ben", "speak": "en", "captions": "vi"})
        assert missing.json()["error"]["code"] == "room_not_found"
        with pytest.raises(WebSocketDisconnect) as bad, \
                client.websocket_connect(f"/ws/rooms/{room}?token=forged") as ws:
            ws.receive_json()
        assert bad.value.code == 4000
        with client.websocket_connect(f"/ws/rooms/{room}?token={person['token']}") as ws:
            assert ws.receive_json()["type"] == "welcome"
            live = _metrics(client)
            ws.send_json({"type": "mute", "target": person["participant_id"]})  # host only
            msg = ws.receive_json()
            while msg["type"] != "error":  # room events (their own `present`) come first
                msg = ws.receive_json()
            assert msg["code"] == "forbidden"
        after = _metrics(client)

    assert live["jb_signaling_rooms"] == 1 and live["jb_signaling_sockets"] == 1
    assert live["jb_signaling_rooms_by_participants{participants=1}"] == 1
    assert "jb_signaling_rooms_by_participants{participants=1}" not in after  # the room emptied
    assert after["jb_signaling_rooms_created_total"] == 1
    assert after["jb_signaling_joins_total"] == 1
    assert after["jb_signaling_socket_connects_total"] == 1
    assert after["jb_signaling_refusals_total{reason=room_not_found}"] == 1
    assert after["jb_signaling_refusals_total{reason=bad_token}"] == 1
    assert after["jb_signaling_refusals_total{reason=forbidden}"] == 1
    assert "process_cpu_seconds_total" in after
