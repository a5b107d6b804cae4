"""The page renews its token before it expires, silently, and yields to the same seat opened
in another tab - in Debian's Chromium against real signaling, a real jb-gateway process and
Redis (no speech services: this is about the session, not captions).

The page is given a seat whose token it believes expires in about 5 minutes (the session a
reload would resume, in ``sessionStorage``): it must exchange the token at once (it renews 5 min
ahead), move to a new socket, keep its media (no second ``media_offer``) and stay in the call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from browser_stack import launch, playwright, silent_wav  # noqa: F401
from conftest import ServedApp
from gateway_process import start_gateway, stop_gateway
from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings

pytestmark = pytest.mark.browser
SECRET = "renew-" + "r" * 40


@pytest.fixture(scope="module")
def signaling(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, gateway = start_gateway(redis_url, tmp_path_factory.mktemp("gw") / "gateway.log")
    try:
        settings = SignalingSettings(redis_url=redis_url, jwt_secret=SECRET, gateway_url=gateway,
                                     rate_join_per_min=10_000, rate_create_per_min=10_000)
        with ServedApp(create_app(settings)) as sig:
            yield sig.url
    finally:
        stop_gateway(proc)


def _open_seat(page: Any, url: str, room: str, joined: dict[str, Any], expires_in_s: float,
               frames: list[tuple[int, str, str]]) -> None:
    """Open the room link in ``page`` with a saved session for ``joined`` and press Join."""
    sockets: list[Any] = []

    def watch(ws: Any) -> None:  # frames tagged with the socket's number: 0, 1, ...
        n = len(sockets)
        sockets.append(ws)
        ws.on("framesent", lambda p: frames.append((n, ">", json.loads(p)["type"])))
        ws.on("framereceived", lambda p: frames.append((n, "<", json.loads(p)["type"])))
        ws.on("close", lambda _: frames.append((n, "closed", "")))

    page.on("websocket", watch)
    page.goto(f"{url}/r/{room}")
    page.wait_for_selector("body[data-ready='1']", timeout=10000)
    session = {**joined, "room": room, "expires_at": time.time() + expires_in_s,
               "prefs": {"name": "Lan", "speak": "en", "captions": "en", "hear": False}}
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)",
                  [f"jb.session.{room}", json.dumps(session)])
    page.get_by_label("Your name").fill("Lan")
    page.get_by_role("button", name="Join").click()
    page.wait_for_selector("body[data-screen='call'] .tile.self", timeout=10000)


def test_the_page_renews_its_token_silently_and_yields_to_another_tab(
        signaling: str, playwright: Any, silent_wav: Path) -> None:  # noqa: F811
    room = httpx.post(signaling + "/api/rooms").json()["room_id"]
    joined = httpx.post(f"{signaling}/api/rooms/{room}/join",
                        json={"name": "Lan", "speak": "en", "captions": "en"}).json()
    browser = launch(playwright, silent_wav)
    try:
        ctx = browser.new_context(permissions=["camera", "microphone"], locale="en-US")
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        frames: list[tuple[int, str, str]] = []
        # 5 min 4 s left: the page renews 5 min ahead, so 4 s from now (after media is up)
        _open_seat(page, signaling, room, joined, 304, frames)
        page.wait_for_function(f"() => JSON.parse(sessionStorage.getItem('jb.session.{room}'))"
                               f".token !== {json.dumps(joined['token'])}", timeout=20000)
        deadline = time.monotonic() + 10
        while (1, "<", "welcome") not in frames and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        page.wait_for_timeout(1000)
        assert (1, "<", "welcome") in frames, frames  # a second socket, with the new token
        assert (0, "closed", "") in frames, frames  # the first one replaced
        assert [f for f in frames if f[1:] == (">", "media_offer")] == [(0, ">", "media_offer")]
        assert page.evaluate("document.body.dataset.screen") == "call"
        saved = json.loads(page.evaluate(f"sessionStorage.getItem('jb.session.{room}')"))
        claims = jwt.decode(saved["token"], SECRET, algorithms=["HS256"],
                            issuer="jbcalling-signaling")
        assert claims["sub"] == joined["participant_id"] and claims["exp"] > time.time() + 3600

        # The same seat in another tab: this one ends, saying where the call went.
        other = ctx.new_page()
        _open_seat(other, signaling, room, {**joined, "token": saved["token"]}, 3600, [])
        page.wait_for_selector("body[data-screen='end']", timeout=10000)
        assert page.locator("#end-message").text_content() == \
            "This call is now open in another tab or window."
        assert page.get_by_role("button", name="Join again").is_visible()
        assert other.evaluate("document.body.dataset.screen") == "call"
        assert errors == []
    finally:
        browser.close()
