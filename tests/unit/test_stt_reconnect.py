"""Where a speaker's stt stream reopens after stt went away, and how often Consul is asked.

A Consul stand-in answers ``/v1/health/service/stt?passing=1`` like Consul does (in a real
uvicorn server in a thread) and counts the queries; the list it reports is set by each test.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

from jbcalling.common.discovery import Discovery, NoInstance
from jbcalling.gateway.speaker_stream import REFRESH_S, SpeakerStream

pytestmark = pytest.mark.unit


class FakeConsul:
    def __init__(self) -> None:
        self.passing: list[tuple[str, int]] = []
        self.queries = 0
        self.app = FastAPI()

        @self.app.get("/v1/health/service/{name}")
        def health(name: str, passing: str = "") -> list[dict[str, Any]]:
            self.queries += 1
            return [{"Node": {"Address": addr}, "Service": {"Address": addr, "Port": port}}
                    for addr, port in self.passing]


def test_failed_calls_ask_consul_again_at_most_every_refresh(serve: Any) -> None:
    consul = FakeConsul()
    consul.passing = [("127.0.0.1", 9001)]
    with serve(consul.app) as srv:
        d = Discovery(srv.url, ttl_s=30)

        async def scenario() -> list[int]:
            counts = []
            await d.urls("stt")
            for _ in range(5):  # five speakers' streams fail at once
                d.forget("stt", REFRESH_S)
                await d.urls("stt")
            counts.append(consul.queries)
            await asyncio.sleep(REFRESH_S + 0.05)
            d.forget("stt", REFRESH_S)
            await d.urls("stt")
            counts.append(consul.queries)
            d.forget("stt")  # no refresh interval: the next call asks at once
            await d.urls("stt")
            counts.append(consul.queries)
            return counts

        assert asyncio.run(scenario()) == [1, 2, 3]


@pytest.mark.parametrize(("used", "healthy", "expected"), [
    # the instance it used is healthy: sticky
    ("http://127.0.0.1:9002", [9001, 9002], [("http://127.0.0.1:9002", 5.0),
                                             ("http://127.0.0.1:9001", 5.0)]),
    # restarted and not passing in Consul yet: the healthy ones first, then it, quickly
    ("http://127.0.0.1:9002", [9001], [("http://127.0.0.1:9001", 5.0),
                                       ("http://127.0.0.1:9002", 2.0)]),
    ("http://127.0.0.1:9002", [], [("http://127.0.0.1:9002", 2.0)]),
    ("", [9001], [("http://127.0.0.1:9001", 5.0)]),
])
def test_reconnect_candidates(serve: Any, used: str, healthy: list[int],
                              expected: list[tuple[str, float]]) -> None:
    consul = FakeConsul()
    consul.passing = [("127.0.0.1", port) for port in healthy]
    with serve(consul.app) as srv:
        stream = SpeakerStream(SimpleNamespace(discovery=Discovery(srv.url)), "room", "pid")  # type: ignore[arg-type]
        stream.url = used
        assert asyncio.run(stream._candidates()) == expected


def test_consul_away_the_instance_it_used_is_still_tried(serve: Any) -> None:
    with serve(FakeConsul().app) as srv:
        gone = srv.url  # nothing listens there any more
    stream = SpeakerStream(SimpleNamespace(discovery=Discovery(gone)), "room", "pid")  # type: ignore[arg-type]
    with pytest.raises(NoInstance, match="cannot ask Consul"):
        asyncio.run(stream._candidates())
    stream.url = "http://127.0.0.1:9002"
    assert asyncio.run(stream._candidates()) == [("http://127.0.0.1:9002", 2.0)]


def test_no_instance_at_all_is_an_error_that_says_so(serve: Any) -> None:
    with serve(FakeConsul().app) as srv:
        stream = SpeakerStream(SimpleNamespace(discovery=Discovery(srv.url)), "room", "pid")  # type: ignore[arg-type]
        t0 = time.monotonic()
        with pytest.raises(NoInstance, match="no healthy stt instance"):
            asyncio.run(stream._open("en"))
        assert time.monotonic() - t0 < 5
