"""A call through the page, in real browsers: Debian's Chromium (two browser processes, so that
only the speaker's fake microphone plays speech), real signaling, gateway, stt, mt, tts, Redis.

An (host, speaks English; the microphone plays a real human English recording), Binh (wants
Vietnamese captions and to hear the translation) and Cara (camera permission refused: audio
only) join one room through the lobby. Each sees the others' video playing; Binh sees An's words
as captions (partial, then final in place, then the translation); An's chat message reaches
Binh translated (the original a click away) and Cara as written; Cara then Binh raise their
hands (everyone sees the order; the host lowers Cara's); a reaction shows on Binh's tile; a long
unbroken caption wraps inside the overlay; Binh downloads the transcript (captions and chat);
on a short window Binh scrolls down to the captions and the gateway pauses the video of the
tiles he cannot see, then sends it again when he scrolls back; a fourth joiner is refused
(room full); the host mutes Binh and removes Cara, whose pages say so; the host locks the room,
and the fourth person waits (their page says so) until the host admits them; with mt down the
captions say "translation unavailable" and chat goes out untranslated, marked so; An switches
"I speak" to Vietnamese in the call's settings and his next caption is Vietnamese; the host
ends the room.
Screenshots (lobby is in test_lobby.py): a 3-person call with captions, the phone layout.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from browser_stack import (  # noqa: F401
    CONTRAST,
    artifacts,
    launch,
    models_dir,
    playwright,
    silent_wav,
    speech_wav,
    stack,
)
from jbcalling.common.protocol import Caption, events_channel

pytestmark = pytest.mark.browser
# The words of the recording (Samuel Beckett, "Worstward Ho"), which Whisper tiny.en recognizes.
BECKETT = {"ever", "tried", "failed", "no", "matter", "try", "again", "fail", "better"}

FRAMES = """() => [...document.querySelectorAll('.tile.remote')].map(t => {
    const v = t.querySelector('video');
    return [t.dataset.pid, v.getVideoPlaybackQuality().totalVideoFrames, v.videoWidth]; })"""

SLOTS = """() => [...document.querySelectorAll('.tile.remote video')].map(v =>
    v.srcObject ? v.srcObject.getTracks().map(t => [t.kind, t.muted, t.readyState]) : null)"""

# Records every change of a caption entry (state and text) and of the page's ducking, so the
# test can check the order partial -> final -> translated of one entry afterwards.
WATCH = """() => {
    window.capLog = []; window.ducked = false;
    const log = document.querySelector('#caption-log');
    new MutationObserver(() => {
        for (const el of log.querySelectorAll('.cap')) {
            const row = [el.dataset.speaker + '|' + el.dataset.segment, el.dataset.state,
                         el.querySelector('.orig').textContent, el.querySelector('.trans').textContent];
            const last = window.capLog.findLast(r => r[0] === row[0]);
            if (!last || row.some((v, i) => v !== last[i])) window.capLog.push(row);
        }
    }).observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
    new MutationObserver(() => { if (document.body.classList.contains('ducked')) window.ducked = true; })
        .observe(document.body, {attributes: true});
}"""


def record(ws: Any, into: list[str]) -> None:
    """Keep the types of the signaling messages a page exchanges (read after a failure)."""
    def frame(direction: str, payload: Any) -> None:
        try:
            kind = json.loads(payload)["type"]
        except (ValueError, KeyError, TypeError):
            kind = "?"
        if kind not in ("caption", "captions_status", "speaking", "pong", "ping"):
            into.append(f"{time.strftime('%H:%M:%S')} {direction} {kind}")

    ws.on("framereceived", lambda payload: frame("<", payload))
    ws.on("framesent", lambda payload: frame(">", payload))
    ws.on("close", lambda _: into.append(f"{time.strftime('%H:%M:%S')} closed"))


def join(page: Any, link: str, name: str, speak: str, captions: str, hear: bool = False) -> str:
    """Join through the lobby; returns the participant id the page got."""
    page.goto(link)
    page.wait_for_selector("body[data-ready='1']", timeout=10000)
    page.get_by_label("Your name").fill(name)
    page.locator(f"input[name=speak][value={speak}]").check()
    page.locator(f"input[name=captions][value={captions}]").check()
    page.locator("#hear").set_checked(hear)
    page.get_by_role("button", name="Join").click()
    page.wait_for_selector("body[data-screen='call'] .tile.self", timeout=10000)
    return str(page.locator(".tile.self").get_attribute("data-pid"))


def until(page: Any, js: str, timeout_s: float, arg: Any = None) -> Any:
    return page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000).json_value()


def video_flows(page: Any, sources: list[str], timeout_s: float = 45) -> dict[str, int]:
    """Wait until the remote tile of every one of ``sources`` decodes frames (3 or more in one
    second: a loaded sender's encoder lowers its frame rate); returns the last frame counts.
    A reconnect of the media (the page negotiates again when signaling says
    ``media_reconnect``) restarts the counters, hence the retries."""
    deadline = time.monotonic() + timeout_s
    before: dict[str, int] = {}
    while True:
        now = {pid: n for pid, n, width in page.evaluate(FRAMES) if width > 0}
        if before and all(now.get(pid, 0) > before.get(pid, 0) + 2 for pid in sources):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(("video does not play", sources, before, now,
                                  page.evaluate(SLOTS)))
        before = now
        time.sleep(1)


def paused_at_gateway(gateway: str, streams: int, page: Any, timeout_s: float = 20) -> bool:
    """Whether the gateway's paused video streams (its /ready load) reach ``streams`` in time
    (a loaded machine's gateway may take seconds to answer). It waits with ``page``: the sync
    Playwright client handles the browsers' events only inside its own calls, and a socket
    routed through it (Cara's) forwards the page's messages in that client (WebSocketRoute:
    without an on_message handler, the Python side sends each message on): a plain sleep
    would hold them back."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            load = httpx.get(gateway + "/ready", timeout=5).json()["load"]
        except httpx.HTTPError:
            continue
        if load["video_paused_streams"] == streams:
            return True
        page.wait_for_timeout(200)
    return False


def publish(redis_url: str, room: str, text: str) -> None:
    """A room event on the room's channel, as the gateway publishes it."""
    import redis

    with redis.Redis.from_url(redis_url) as r:
        r.publish(events_channel(room), text)


def test_three_people_call_with_captions(stack: Any, playwright: Any, speech_wav: Path,  # noqa: F811
                                         silent_wav: Path, artifacts: Path,  # noqa: F811
                                         redis_url: str) -> None:
    started = time.monotonic()
    speaker_browser = launch(playwright, speech_wav, screen_share=True)
    listener_browser = launch(playwright, silent_wav)
    errors: list[str] = []
    try:
        def context(browser: Any, permissions: list[str], **kw: Any) -> Any:
            ctx = browser.new_context(permissions=permissions, locale="en-US",
                                      viewport={"width": 1280, "height": 800}, **kw)
            ctx.set_default_timeout(15000)
            return ctx

        an_page = context(speaker_browser, ["camera", "microphone"]).new_page()
        binh_ctx = context(listener_browser, ["camera", "microphone"], accept_downloads=True)
        binh_page = binh_ctx.new_page()
        cara_page = context(listener_browser, ["microphone"]).new_page()  # camera refused
        frames: dict[str, list[str]] = {"an": [], "binh": [], "cara": []}
        for name, p in (("an", an_page), ("binh", binh_page), ("cara", cara_page)):
            p.on("pageerror", lambda exc: errors.append(str(exc)))
            p.on("websocket", lambda ws, name=name: record(ws, frames[name]))

        # An creates the room (and so is its host) and joins; the others open the link.
        an_page.goto(stack.url + "/")
        an_page.get_by_role("button", name="Create a room").click()
        an_page.wait_for_url("**/r/*")
        link = an_page.locator("#room-link").input_value()
        an = join(an_page, link, "An", "en", "en")
        binh = join(binh_page, link, "Binh", "vi", "vi", hear=True)
        # Cara's signaling socket goes through Playwright, so that the test can cut it.
        cara_sockets: list[Any] = []

        def through(route: Any) -> None:
            route.connect_to_server()
            cara_sockets.append(route)

        cara_page.route_web_socket("**/ws/rooms/**", through)
        cara_page.goto(link)
        cara_page.wait_for_selector("body[data-ready='1']")
        cara_page.wait_for_function(
            "() => document.querySelector('#media-problems').textContent.includes('Camera access')")
        cara = join(cara_page, link, "Cara", "en", "en")
        binh_page.evaluate(WATCH)

        # Everyone sees three tiles, and the others' camera video plays (frames advance).
        for p in (an_page, binh_page, cara_page):
            p.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 3")
        cameras = {an: [binh], binh: [an], cara: [an, binh]}
        for p, me in ((an_page, an), (binh_page, binh), (cara_page, cara)):
            video_flows(p, cameras[me], timeout_s=45)
        # Cara is audio only: her tile shows her initials, her microphone reaches the others,
        # and her camera button says there is none.
        assert an_page.locator(f".tile[data-pid='{cara}']:not(.has-video) .avatar").is_visible()
        an_page.wait_for_function(
            """pid => { const v = document.querySelector(`.tile[data-pid='${pid}'] video`);
                 const a = v.srcObject && v.srcObject.getAudioTracks()[0];
                 return a && !a.muted && a.readyState === 'live'; }""", arg=cara)
        assert cara_page.get_by_role("button", name="No camera").is_disabled()

        # Cara's signaling connection drops (as when a signaling replica restarts): her page
        # says it is reconnecting, reconnects with the same token and gets the call back.
        cara_sockets[-1].close(code=1012, reason="service restart")
        cara_page.wait_for_function("""() => { const b = document.querySelector('#banner-conn');
            return !b.hidden && b.textContent.includes('reconnecting'); }""", timeout=10000)
        cara_page.wait_for_function("() => document.querySelector('#banner-conn').hidden",
                                    timeout=20000)
        assert len(cara_sockets) == 2
        assert cara_page.locator(".tile.self").get_attribute("data-pid") == cara
        video_flows(cara_page, [an, binh], timeout_s=45)

        # Binh sees An speaking, and An's words: partial, replaced in place by the final, then
        # the Vietnamese translation in the same entry; and hears it (the original is ducked).
        binh_page.wait_for_selector(f".tile[data-pid='{an}'].speaking", timeout=30000)
        # A segment seen from its first partial (the speech loops: earlier ones began before the
        # page was watching).
        key = until(binh_page, """an => { const rows = window.capLog.filter(r => r[0].startsWith(an + '|'));
            const keys = [...new Set(rows.map(r => r[0]))];
            return keys.find(k => { const s = rows.filter(r => r[0] === k).map(r => r[1]);
                                    return s[0] === 'partial' && s.at(-1) === 'translated'; }); }""",
                    120, an)
        states = [row[1] for row in binh_page.evaluate("window.capLog") if row[0] == key]
        assert "final" in states, states
        assert states.index("final") > max(i for i, s in enumerate(states) if s == "partial")
        segment = key.split("|", 1)[1]
        done = binh_page.locator(f".cap[data-segment='{segment}']")
        assert done.count() == 1  # replaced in place: one entry per segment, no stacking
        final_text = done.locator(".orig").inner_text()
        words = re.sub(r"[^\w' ]+", " ", final_text.lower()).split()
        assert words and sum(w in BECKETT for w in words) >= len(words) / 2, final_text
        assert done.locator(".who").inner_text() == "An"
        assert done.locator(".trans").inner_text().strip()
        assert done.locator(".trans").get_attribute("lang") == "vi"
        assert binh_page.locator("#overlay p").count() >= 1
        # Chat: An writes in English; Binh reads it in Vietnamese (mt), the original a click
        # away; Cara (English captions) reads it as written.
        said = "Please read the agenda before Friday"
        an_page.get_by_label("Message").fill(said)
        an_page.get_by_role("button", name="Send").click()
        binh_page.locator(".chat-msg[data-shown='translation']").wait_for(timeout=30000)
        binh_msg = binh_page.locator(".chat-msg").first
        shown = binh_msg.locator(".text").inner_text()
        assert shown.strip() and shown != said and binh_msg.locator(".text").get_attribute("lang") == "vi"
        assert binh_msg.locator(".who").inner_text() == "An"
        binh_msg.get_by_role("button", name="Show original").click()
        assert binh_msg.locator(".text").inner_text() == said
        binh_msg.get_by_role("button", name="Show translation").click()
        assert binh_msg.locator(".text").inner_text() == shown
        cara_msg = cara_page.locator(".chat-msg")
        cara_msg.wait_for(timeout=30000)
        assert cara_msg.locator(".text").inner_text() == said
        assert cara_msg.get_by_role("button").count() == 0  # nothing to toggle

        # Raised hands: Cara then Binh; everyone sees that order; the host lowers Cara's.
        cara_page.get_by_role("button", name="Raise hand").click()
        cara_page.wait_for_selector("#hands li")
        binh_page.get_by_role("button", name="Raise hand").click()
        hands = "() => [...document.querySelectorAll('#hands li .name')].map(e => e.textContent)"
        for p in (an_page, binh_page, cara_page):
            p.wait_for_function(f"() => ({hands})().join() === 'Cara,Binh'")
        assert "(1)" in an_page.locator(f".tile[data-pid='{cara}'] .badge.hand").inner_text()
        assert "(2)" in an_page.locator(f".tile[data-pid='{binh}'] .badge.hand").inner_text()
        an_page.get_by_role("button", name="Lower hand: Cara", exact=True).click()
        for p in (an_page, binh_page, cara_page):
            p.wait_for_function(f"() => ({hands})().join() === 'Binh'")
        assert cara_page.get_by_role("button", name="Raise hand").is_visible()
        binh_page.get_by_role("button", name="Lower hand", exact=True).click()
        an_page.wait_for_selector("#hands-box", state="hidden")

        # A reaction shows on the sender's tile at the others.
        binh_page.get_by_role("button", name="Reactions: 👍").click()
        an_page.wait_for_selector(f".tile[data-pid='{binh}'] .reaction", timeout=10000)
        assert an_page.locator(f".tile[data-pid='{binh}'] .reaction").inner_text() == "👍"

        # The overlay wraps a long unbroken string (a URL, a long translation) inside the tile.
        room_id = link.rstrip("/").rsplit("/", 1)[1]
        long_word = "https://example.org/" + "x" * 400
        now = int(time.time() * 1000)
        # (as Cara's, who says nothing: no check of An's captions can take it for his)
        publish(redis_url, room_id, Caption(
            kind="final", speaker=cara, speaker_name="Cara", segment="wrap", lang="en",
            text=long_word, start_ms=0, end_ms=1, audio_end_ms=now, emitted_ms=now).to_json())
        line = binh_page.locator("#overlay p", has_text="x" * 40)
        line.wait_for(timeout=10000)
        fits = line.evaluate("""el => { const s = document.querySelector('.stage').getBoundingClientRect();
            const r = el.getBoundingClientRect();
            return [el.scrollWidth <= el.clientWidth, r.right <= s.right + 1, r.height > 60]; }""")
        assert fits == [True, True, True], fits  # fits the width, on several lines

        # Cara reads English: An's captions, no translation line.
        cara_page.wait_for_selector(f".cap[data-speaker='{an}'][data-state='final']", timeout=60000)
        binh_page.wait_for_function("() => window.ducked", timeout=30000)

        # Autoscroll pauses while Binh reads back, and "jump to the latest" resumes it.
        binh_page.wait_for_function("""() => { const l = document.querySelector('#caption-log');
            return l.scrollHeight > l.clientHeight + 40; }""", timeout=90000)
        binh_page.locator("#caption-log").evaluate("el => el.scrollTo(0, 0)")
        binh_page.wait_for_selector("#jump:visible", timeout=5000)
        entries = binh_page.locator(".cap").count()
        texts = binh_page.locator(".cap .orig").all_inner_texts()
        binh_page.wait_for_function(
            "([n, t]) => document.querySelectorAll('.cap').length > n || "
            "[...document.querySelectorAll('.cap .orig')].some((e, i) => e.textContent !== t[i])",
            arg=[entries, texts], timeout=60000)
        assert binh_page.locator("#caption-log").evaluate("el => el.scrollTop") == 0
        binh_page.locator("#jump").click()
        assert binh_page.locator("#caption-log").evaluate(
            "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 24")
        assert binh_page.locator("#jump").is_hidden()

        binh_page.screenshot(path=str(artifacts / "call-3-people.png"))
        assert binh_page.evaluate(CONTRAST) == []  # WCAG AA text contrast in the call
        assert binh_page.locator("#grid .tile").count() == 3
        for sel in ("#grid .tile.self", ".cap[data-state='translated']", "#btn-mic", "#btn-leave",
                    "#dl-txt", "#dl-vtt"):
            assert binh_page.locator(sel).first.is_visible(), sel

        # The transcript, downloaded from the page.
        for button, fmt in (("#dl-txt", "txt"), ("#dl-vtt", "vtt")):
            with binh_page.expect_download(timeout=10000) as dl:
                binh_page.locator(button).click()
            path = dl.value.path()
            text = Path(path).read_text()
            (artifacts / f"transcript.{fmt}").write_text(text)
            assert dl.value.suggested_filename.endswith(f".{fmt}")
            assert ("An (en):" in text) if fmt == "txt" else text.startswith("WEBVTT"), text[:300]
            assert (f"An (en, chat): {said}" if fmt == "txt" else f"<v An>[chat] {said}") in text

        # An shares the screen: Binh receives it in An's tile (the fake screen is 1280x720; the
        # camera is at most 640 wide, less when the encoder adapts to the CPU), and gets the
        # camera back when An stops.
        width = """pid => document.querySelector(`.tile[data-pid='${pid}'] video`).videoWidth"""
        an_page.get_by_role("button", name="Share screen").click()
        an_page.wait_for_selector("#btn-share[aria-pressed='true']")
        assert an_page.locator(".tile.self.sharing").is_visible()
        binh_page.wait_for_function(f"pid => ({width})(pid) > 640", arg=an, timeout=30000)
        an_page.get_by_role("button", name="Stop sharing").click()
        assert an_page.locator(".tile.self.sharing").count() == 0
        binh_page.wait_for_function(f"pid => ({width})(pid) <= 640", arg=an, timeout=30000)
        video_flows(binh_page, [an])

        # The phone layout: one column, two tiles a row, captions under the videos, no
        # sideways scrolling (a 640 px wide window is a laptop at 200 % zoom).
        for width, height, shot in ((390, 844, "phone.png"), (640, 400, None)):
            cara_page.set_viewport_size({"width": width, "height": height})
            layout = cara_page.evaluate("""() => {
                const g = document.querySelector('#grid'), c = document.querySelector('.captions');
                return {cols: getComputedStyle(g).gridTemplateColumns.split(' ').length,
                        below: c.getBoundingClientRect().top >= g.getBoundingClientRect().bottom - 1,
                        overflow: document.documentElement.scrollWidth - window.innerWidth}; }""")
            assert layout == {"cols": 2, "below": True, "overflow": 0}, (width, layout)
            if shot:
                cara_page.wait_for_selector(".cap", timeout=30000)
                cara_page.screenshot(path=str(artifacts / shot))  # what the phone shows
                for sel in ("#grid .tile", "#btn-mic", "#btn-leave"):
                    assert cara_page.locator(sel).first.is_visible(), sel
                # the controls stay on screen (sticky at the bottom)
                box = cara_page.locator(".controls").bounding_box()
                assert box and box["y"] + box["height"] <= height + 1, box
        cara_page.set_viewport_size({"width": 1280, "height": 800})
        # On such a short window Binh scrolls down to the captions: the tiles are off screen, his
        # page says so (video_visibility) and the gateway stops sending him their video (audio
        # goes on); back at the top, it sends it again and An's picture returns. (On Cara's page
        # the message would wait in the test's Playwright client, which forwards her routed
        # socket's messages only inside its own calls: paused_at_gateway waits with a page.)
        binh_page.set_viewport_size({"width": 640, "height": 400})
        video_flows(binh_page, [an])  # his media is up (a loaded gateway may have reset it)
        binh_page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        assert paused_at_gateway(stack.gateway, 2, binh_page), (frames["binh"][-8:], binh_page.evaluate(
            "() => [...document.querySelectorAll('.tile')].map(t => [t.className, "
            "t.getBoundingClientRect().bottom])"))
        assert binh_page.locator(".tile.remote.paused").count() == 2  # initials, not a still
        binh_page.evaluate("window.scrollTo(0, 0)")
        assert paused_at_gateway(stack.gateway, 0, binh_page), frames["binh"][-5:]
        binh_page.wait_for_function(  # a new frame of An's (the keyframe the gateway asked for)
            f"() => !document.querySelector(\".tile[data-pid='{an}']\").classList.contains('paused')",
            timeout=10000)
        binh_page.set_viewport_size({"width": 1280, "height": 800})

        # A fourth person, who refused both camera and microphone (the page says so), is refused:
        # the room is full.
        extra = context(listener_browser, []).new_page()
        extra.goto(link)
        extra.wait_for_selector("body[data-ready='1']")
        extra.wait_for_function("""() => { const t = document.querySelector('#media-problems').textContent;
            return t.includes('Microphone access was refused') && t.includes('Camera access'); }""")
        extra.get_by_label("Your name").fill("Dung")
        extra.get_by_role("button", name="Join").click()
        extra.wait_for_function(
            "() => document.querySelector('#join-error').textContent.includes('This room is full')")
        assert extra.locator("body[data-screen='lobby']").count() == 1

        # Binh reloads the page: "Join" takes his seat back (same participant) although the
        # room is full, and the media comes back.
        binh_page.reload()
        binh_page.wait_for_selector("body[data-ready='1']")
        assert binh_page.get_by_label("Your name").input_value() == "Binh"  # remembered
        binh_page.get_by_role("button", name="Join").click()
        binh_page.wait_for_selector("body[data-screen='call'] .tile.self")
        assert binh_page.locator(".tile.self").get_attribute("data-pid") == binh
        binh_page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 3")
        video_flows(binh_page, [an])

        # The host mutes Binh: his page says who did and keeps his microphone button off (only
        # a host lifts a host mute); the host's page shows who muted him.
        an_page.get_by_role("button", name="Mute Binh").click()
        binh_page.wait_for_function(
            "() => document.querySelector('#banner-media').textContent.includes('An (host) muted')")
        assert binh_page.locator("#btn-mic").get_attribute("aria-pressed") == "true"
        assert binh_page.locator("#btn-mic").is_disabled()
        an_page.wait_for_selector(f".tile[data-pid='{binh}'] .badge.muted:visible")
        assert an_page.locator(f".tile[data-pid='{binh}'] .badge.muted").text_content() == \
            "muted by An"
        assert an_page.get_by_role("button", name="Unmute Binh").is_visible()

        # Cara switches the interface to Vietnamese during the call.
        cara_page.get_by_label("Interface language").select_option("vi")
        assert cara_page.get_by_role("button", name="Rời cuộc gọi").is_visible()
        assert cara_page.get_by_role("heading", name="Phụ đề").is_visible()

        # The host removes Cara: her page says so (in Vietnamese); the others drop her tile.
        an_page.get_by_role("button", name="Remove Cara").click()
        an_page.get_by_role("button", name="Yes").click()
        cara_page.wait_for_function(
            "() => document.querySelector('#end-message').textContent.includes('mời bạn ra khỏi')")
        assert cara_page.locator("#end-message").is_visible()
        assert not cara_page.locator("#rejoin").is_visible()
        binh_page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 2")

        # The host locks the room: the fourth person now waits (their page says so) until the
        # host admits them, and then enters the call.
        an_page.get_by_role("button", name="Lock room").click()
        binh_page.wait_for_selector("#banner-lock:visible")
        extra.get_by_role("button", name="Join").click()
        extra.wait_for_function("""() => { const s = document.querySelector('#wait-status');
            return !s.hidden && s.textContent.includes('waiting for a host'); }""")
        assert extra.locator("body[data-screen='lobby']").count() == 1
        an_page.get_by_role("button", name="Admit Dung").click()
        extra.wait_for_selector("body[data-screen='call'] .tile.self", timeout=15000)
        an_page.wait_for_function("() => document.querySelectorAll('#grid .tile').length === 3")
        assert extra.locator("#banner-lock").is_visible()
        assert an_page.locator("#waiting-box").is_hidden()

        # mt goes down: the next sentence's caption says the translation is unavailable, and
        # chat goes out as written, marked untranslated.
        stack.services["mt"].__exit__(None, None, None)
        an_page.get_by_label("Message").fill("Second message")
        an_page.get_by_role("button", name="Send").click()
        untranslated = binh_page.locator(".chat-msg", has_text="Second message")
        untranslated.wait_for(timeout=30000)
        assert untranslated.locator(".mark").inner_text() == "untranslated"
        binh_page.wait_for_selector(".cap .trans.unavailable", timeout=120000)
        assert "translation unavailable" in binh_page.locator(".cap .trans.unavailable").first.inner_text()

        # An now speaks Vietnamese ("I speak" in the call's settings): the gateway switches his
        # stt stream, and his next caption is recognized as Vietnamese (the stand-in) while the
        # media goes on.
        an_page.locator("details.settings").evaluate("d => { d.open = true; }")
        an_page.locator("#call-speak").select_option("vi")
        binh_page.wait_for_function("""an => [...document.querySelectorAll('#caption-log .cap')]
            .some(c => c.dataset.speaker === an && c.querySelector('.orig').lang === 'vi')""",
                                    arg=an, timeout=60000)

        # stt goes down: the page says An's captions are paused, and the call goes on.
        t0 = time.monotonic()
        stack.services["stt"].__exit__(None, None, None)
        binh_page.wait_for_function("""() => { const b = document.querySelector('#banner-captions');
            return !b.hidden && b.textContent.includes('An') && b.textContent.includes('paused'); }""",
                                    timeout=30000)
        print(f"\nstt stopped; the page said captions paused after {time.monotonic() - t0:.1f} s")
        video_flows(binh_page, [an])

        # The host ends the room for everyone.
        an_page.get_by_role("button", name="End call for everyone").click()
        an_page.get_by_role("button", name="Yes").click()
        binh_page.wait_for_function(
            "() => document.querySelector('#end-message').textContent.includes('ended this call')")
        extra.wait_for_function(
            "() => document.querySelector('#end-message').textContent.includes('ended this call')")
        # The link of an ended room says so to whoever opens it.
        late = context(listener_browser, []).new_page()
        late.goto(link)
        late.wait_for_selector("body[data-ready='1']")
        late.get_by_label("Your name").fill("Hoa")
        late.get_by_role("button", name="Join").click()
        late.wait_for_function(
            "() => document.querySelector('#join-error').textContent.includes('has ended')")
        assert errors == []
    except Exception:
        (artifacts / "signaling-frames.json").write_text(json.dumps(frames, indent=1))
        raise
    finally:
        speaker_browser.close()
        listener_browser.close()
        took = time.monotonic() - started
        (artifacts / "call.json").write_text(json.dumps({"call_test_s": round(took, 1)}))
        print(f"\nthe call test took {took:.0f} s")
