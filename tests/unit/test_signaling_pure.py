"""signaling's pure parts: TURN REST credentials, tokens, the Origin rule, transcript formats."""

import base64
import hashlib
import hmac

import pytest

from jbcalling.common.protocol import Segment
from jbcalling.signaling import tokens, transcript, turn
from jbcalling.signaling.settings import SignalingSettings
from jbcalling.signaling.ws import origin_allowed

pytestmark = pytest.mark.unit
SECRET = "k" * 40


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    user, password = turn.credentials("shared", "p1", 3600, now=1000)
    assert user == "4600:p1"
    expected = base64.b64encode(hmac.new(b"shared", b"4600:p1", hashlib.sha1).digest()).decode()
    assert password == expected
    assert turn.ice_servers([], ["turn:t:3478"], "", "p1", 60) == []  # no secret: no TURN


def test_tokens_round_trip_and_refuse_tampering() -> None:
    tok = tokens.issue(SECRET, "room1", "p1", "host", 60)
    assert tokens.verify(SECRET, tok, "room1").role == "host"
    with pytest.raises(tokens.TokenError, match="wrong room"):
        tokens.verify(SECRET, tok, "room2")
    with pytest.raises(tokens.TokenError, match="invalid"):
        tokens.verify(SECRET, tok[:-2] + "xx", "room1")


def test_a_short_secret_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        SignalingSettings(jwt_secret="short")


def test_origin_rule() -> None:
    s = SignalingSettings(jwt_secret=SECRET)
    assert origin_allowed(s, None, "a:1")
    assert origin_allowed(s, "http://a:1", "a:1") and not origin_allowed(s, "http://b:1", "a:1")
    pub = SignalingSettings(jwt_secret=SECRET, public_url="https://call.example/")
    assert origin_allowed(pub, "https://call.example", "x") and not origin_allowed(pub, "http://x", "x")


def test_transcript_formats_escape_and_time() -> None:
    seg = Segment("A<b>", "p", 3_723_004, 3_724_000, "en", "x --> y", "", "vi")
    vtt = transcript.as_vtt([seg])
    assert "01:02:03.004 --> 01:02:04.000" in vtt and "<v A&lt;b&gt;>x --&gt; y" in vtt
    assert transcript.as_txt([seg]).startswith("[01:02:03] A<b> (en): x --> y")
