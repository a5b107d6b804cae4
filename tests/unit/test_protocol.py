"""The room events: every one the gateway and signaling emit is a protocol model (read from the
source, so a dict built inline anywhere fails here), every one the web client handles is in the
exported JSON schema, every message it sends is a protocol client message, and
docs/events.schema.json is that schema as the models export it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from jbcalling.common import protocol

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "services" / "jbcalling"
EMITTERS = [p for d in ("gateway", "signaling") for p in (PKG / d).rglob("*.py")]
WEB = PKG / "signaling" / "web"
EMIT_CALLS = {"publish", "_send"}  # RoomStore.publish, the gateway's publish, ws._send


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _model_names() -> set[str]:
    return {cls.__name__ for cls in protocol.EVENTS}


def test_the_gateway_and_signaling_build_no_event_dict_inline() -> None:
    for path in EMITTERS:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert "type" not in keys, f"{path}:{node.lineno}: an event built as a dict; " \
                                           "use a model of jbcalling/common/protocol.py"


def test_every_event_the_gateway_and_signaling_emit_is_a_protocol_model() -> None:
    models, seen = _model_names(), set()
    for path in EMITTERS:
        tree = ast.parse(path.read_text(), str(path))
        # names bound to events in the module: parameters typed Event (forwarders) and
        # variables assigned a model (or a helper that returns one)
        helpers = {f.name for f in ast.walk(tree)
                   if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                   and f.returns is not None and ast.unparse(f.returns) in models}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called(node) in EMIT_CALLS and node.args):
                continue
            event = node.args[-1]
            if isinstance(event, ast.Call) and _called(event) in models | helpers:
                seen.add(_called(event))
                continue
            # a variable holding a model built above (a caption, its translation), or the wire
            # form of an Event-typed parameter, on its way to Redis
            if isinstance(event, ast.Call) and _called(event) == "to_json":
                event = event.func.value  # type: ignore[attr-defined]
            assert isinstance(event, ast.Name), f"{path}:{node.lineno}: emits {ast.unparse(event)}"
    # the scan found the emitters: presence, host actions, media and captions
    assert {"Welcome", "Present", "Left", "Ended", "MediaSlots", "Speech", "SpeechStatus",
            "CaptionsStatus", "Sdp", "MediaReady", "Joined", "reconnect_event", "_error"} <= seen, seen


def test_the_web_client_handles_only_events_of_the_schema() -> None:
    schema = protocol.event_schema()
    in_schema = set(schema["discriminator"]["mapping"])
    handled = set(re.findall(r'^\s*case "(\w+)":', (WEB / "call.js").read_text(), re.M))
    assert handled, "no `case` found in call.js: the scan is broken"
    assert handled <= in_schema, f"the page handles events the protocol lacks: {handled - in_schema}"
    # and every event the services emit has a place in the page
    assert in_schema - handled <= {"pong"}, in_schema - handled


def test_the_web_client_sends_only_messages_of_the_protocol() -> None:
    from jbcalling.signaling import ws

    sent = {m for path in WEB.glob("*.js")
            for m in re.findall(r'send\(\{ type: "(\w+)"', path.read_text())}
    assert sent, "no `send({ type: ...})` found in the page: the scan is broken"
    schema = protocol.event_schema()["client_messages"]
    assert sent <= set(schema["discriminator"]["mapping"]), sent
    # signaling accepts exactly these, the host's actions only from the host
    accepted, host_only = ws.PER_TYPE, ws.HOST_ACTIONS
    assert accepted == protocol.client_message_types()
    assert host_only == {"mute", "remove", "end", "lock", "admit"}
    assert json.loads(protocol.SdpAnswer(sdp="v=0").to_json()) == {"type": "sdp", "sdp": "v=0"}


def test_events_round_trip_and_keep_their_wire_form() -> None:
    caption = protocol.Caption(kind="final", speaker="p1", speaker_name="An", segment="1:0",
                               lang="vi", text="xin chào", start_ms=0, end_ms=900,
                               audio_end_ms=1_700_000_000_900, emitted_ms=1_700_000_001_000)
    wire = json.loads(caption.to_json())
    assert "translations" not in wire and "translation_error" not in wire
    assert wire["type"] == "caption" and protocol.parse(caption.to_json()) == caption
    translated = caption.model_copy(update={"kind": "translation", "translations": {}})
    assert json.loads(translated.to_json())["translations"] == {}
    speech = protocol.Speech(segment="1:0", speaker="p1", lang="en", listeners=["p2"],
                             emitted_ms=1, audio_end_ms=None, duration_ms=10, peak=3)
    assert json.loads(speech.to_json())["to"] is None  # the page reads it as "to everyone"
    slots = protocol.MediaSlots(to="p2", slots=[protocol.MediaSlot(participant="p1",
                                                                   audio_mid="2", video_mid="3")])
    assert protocol.parse(slots.as_dict()) == slots
    with pytest.raises(ValueError):
        protocol.parse('{"type": "no_such_event"}')


def test_the_stored_records_and_keys() -> None:
    person = protocol.Participant("p1", "An", "vi", "en", True, "host", 1.5)
    assert protocol.Participant.parse(person.to_json()) == person
    assert "joined_at" not in person.public().model_dump()
    seg = protocol.Segment("An", "p1", 0, 900, "vi", "xin chào", "hello", "en")
    assert protocol.Segment.parse(seg.to_json()) == seg
    assert protocol.room_key("r1", "people") == "jb:room:r1:people"
    assert protocol.room_of_channel(protocol.events_channel("a-b_c").encode()) == "a-b_c"
    assert [protocol.other(x) for x in protocol.LANGUAGES] == ["vi", "en"]


def test_the_checked_in_schema_is_the_models_export() -> None:
    checked_in = json.loads((ROOT / "docs" / "events.schema.json").read_text())
    assert checked_in == protocol.event_schema(), \
        "regenerate: python -m jbcalling.common.protocol > docs/events.schema.json"
