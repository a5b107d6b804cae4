"""The pure parts of chat and the waiting room: a message's checks, the wait token's reach, and
chat lines in the transcript formats."""

from __future__ import annotations

import pytest

from jbcalling.common.protocol import REACTIONS, Segment, parse
from jbcalling.signaling import chat, tokens, transcript

pytestmark = pytest.mark.unit
SECRET = "s" * 40


@pytest.mark.parametrize(("text", "code"), [
    (None, "bad_message"), (5, "bad_message"), ("", "bad_message"), (" \n ", "bad_message"),
    ("a\x1bb", "bad_message"), ("a\u200fb", "bad_message"), ("x" * 11, "too_long")])
def test_a_chat_message_is_refused_with_a_clear_error(text: object, code: str) -> None:
    cleaned, error = chat.clean(text, 10)
    assert cleaned == "" and error is not None and error.code == code
    assert error.message.startswith("chat:")


def test_a_chat_message_is_trimmed_and_keeps_its_lines() -> None:
    assert chat.clean("  xin chào\nbạn  ", 20) == ("xin chào\nbạn", None)
    assert chat.clean("😮" * 10, 10) == ("😮" * 10, None)  # characters, not bytes


def test_a_wait_token_is_good_only_for_waiting() -> None:
    wait = tokens.issue_waiting(SECRET, "room1", "req1", 60)
    assert tokens.verify_waiting(SECRET, wait, "room1") == "req1"
    with pytest.raises(tokens.TokenError, match="invalid"):
        tokens.verify(SECRET, wait, "room1")  # not a participant token: no socket, no transcript
    with pytest.raises(tokens.TokenError, match="wrong room"):
        tokens.verify_waiting(SECRET, wait, "room2")
    seat = tokens.issue(SECRET, "room1", "p1", "guest", 60)
    with pytest.raises(tokens.TokenError, match="not a waiting token"):
        tokens.verify_waiting(SECRET, seat, "room1")


def test_chat_lines_in_the_transcript_formats() -> None:
    said = Segment("An", "p1", 1500, 2500, "en", "hello", "xin chào", "vi")
    wrote = Segment("Binh", "p2", 3000, 3000, "vi", "đọc <b>", "read <b>", "en", kind="chat")
    assert Segment.parse(wrote.to_json()) == wrote
    old = Segment.parse('{"speaker": "An", "speaker_id": "p1", "start_ms": 0, "end_ms": 1, '
                        '"lang": "en", "text": "t", "translation": "", "translation_lang": "vi"}')
    assert old.kind == "speech"  # entries stored before chat existed
    txt = transcript.as_txt([said, wrote])
    assert txt.splitlines()[2:] == ["[00:00:03] Binh (vi, chat): đọc <b>", "    (en) read <b>"]
    vtt = transcript.as_vtt([said, wrote])
    assert "<v Binh>[chat] đọc &lt;b&gt;" in vtt and "<v An>hello" in vtt
    assert [s["kind"] for s in transcript.as_json([said, wrote])] == ["speech", "chat"]


def test_the_new_events_parse_back() -> None:
    for wire in ('{"type": "hands", "queue": ["a", "b"], "by": "a"}',
                 f'{{"type": "reaction", "participant": "a", "emoji": "{REACTIONS[0]}"}}',
                 '{"type": "locked", "locked": true, "by": "a"}',
                 '{"type": "waiting", "waiting": [{"id": "r", "name": "N", "speak": "vi"}]}',
                 '{"type": "chat", "id": "c", "sender": "a", "sender_name": "A", "lang": "en", '
                 '"text": "hi", "sent_ms": 1, "translations": {"vi": "chào"}}'):
        event = parse(wire)
        assert parse(event.to_json()) == event
