"""The pure parts of signaling's limits and headers: token buckets, strikes, the per-type
settings, the page's Content-Security-Policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jbcalling.signaling.ratelimit import SocketLimits, TokenBucket
from jbcalling.signaling.settings import WS_RATE_DEFAULTS, SignalingSettings
from jbcalling.signaling.webclient import csp

pytestmark = pytest.mark.unit
SECRET = "s" * 40


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(4, 0.2, at=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [True] * 4 + [False]
    assert not bucket.take(104.9)  # 0.98 of a token back
    assert bucket.take(105.0) and not bucket.take(105.0)
    assert [bucket.take(1000.0) for _ in range(5)] == [True] * 4 + [False]  # never over burst


def test_a_socket_runs_out_of_strikes_only_when_the_excess_lasts() -> None:
    limits = SocketLimits({"ping": (1, 0.001), "other": (1, 0.001)}, strikes=3)
    assert limits.allow("ping") and not limits.allow("ping")
    assert limits.allow("teleport") and not limits.allow("something else")  # share "other"
    assert [limits.strike() for _ in range(4)] == [True, True, True, False]


def test_rate_settings_keep_the_defaults_of_types_left_out() -> None:
    settings = SignalingSettings(jwt_secret=SECRET, ws_rate_limits={"speaking": (2, 1.0)})
    assert settings.ws_rate_limits["speaking"] == (2, 1.0)
    assert settings.ws_rate_limits["media_offer"] == WS_RATE_DEFAULTS["media_offer"]
    with pytest.raises(ValidationError, match="unknown message types"):
        SignalingSettings(jwt_secret=SECRET, ws_rate_limits={"teleport": (1, 1.0)})
    with pytest.raises(ValidationError, match="burst >= 1"):
        SignalingSettings(jwt_secret=SECRET, ws_rate_limits={"ping": (0, 1.0)})


@pytest.mark.parametrize(("scheme", "host", "connect"), [
    ("http", "127.0.0.1:8080", "'self' ws://127.0.0.1:8080"),
    ("https", "call.example", "'self' wss://call.example"),
    ("https", "[::1]:8443", "'self' wss://[::1]:8443"),
    ("https", "call.example; script-src *", "'self'"),  # no directive smuggled in
    ("http", "", "'self'"),
])
def test_the_page_may_connect_only_to_its_own_origin(scheme: str, host: str,
                                                     connect: str) -> None:
    directives = dict(d.strip().split(" ", 1) for d in csp(scheme, host).split(";"))
    assert directives["connect-src"] == connect
    assert directives["script-src"] == "'self'"
