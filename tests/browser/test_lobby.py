"""The lobby in a real browser (Debian's Chromium): it is interactive within a second of the
navigation, creates a room and shows its link, labels every control, switches the interface
between Vietnamese and English; the page's JS + CSS stays small."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from browser_stack import ARTIFACTS, CONTRAST, artifacts, launch, models_dir, playwright, silent_wav, stack  # noqa: F401
from jbcalling.signaling.webclient import WEB

pytestmark = pytest.mark.browser
LOAD_BUDGET_MS = 1000
SIZE_BUDGET = 200 * 1024


def test_the_page_is_small() -> None:
    files = sorted(p for p in WEB.iterdir() if p.suffix in (".js", ".css", ".html"))
    sizes = {p.name: len(gzip.compress(p.read_bytes(), 9)) for p in files}
    js_css = sum(v for k, v in sizes.items() if not k.endswith(".html"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "size.json").write_text(json.dumps({"gzipped_js_css_bytes": js_css,
                                                     "files": sizes}, indent=1))
    print(f"\ncall page JS + CSS: {js_css} bytes gzipped ({len(sizes)} files)")
    assert js_css < SIZE_BUDGET, sizes


def test_lobby_loads_fast_creates_a_room_and_speaks_both_languages(
        stack: Any, playwright: Any, silent_wav: Path, artifacts: Path) -> None:  # noqa: F811
    browser = launch(playwright, silent_wav)
    try:
        ctx = browser.new_context(permissions=["camera", "microphone"], locale="en-US",
                                  viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        loads = []
        for _ in range(3):  # the first load also compiles; report the median of three
            page.goto(stack.url + "/", wait_until="commit")
            page.wait_for_selector("body[data-ready='1']", timeout=5000)
            loads.append(page.evaluate(
                "performance.getEntriesByName('jb-interactive')[0].startTime"))
        load_ms = sorted(loads)[1]
        (artifacts / "load.json").write_text(json.dumps({"load_to_interactive_ms": loads}))
        print(f"\npage load to interactive: {load_ms:.0f} ms (runs: {[round(x) for x in loads]})")
        assert load_ms < LOAD_BUDGET_MS, loads

        create = page.get_by_role("button", name="Create a room")
        assert create.is_visible() and create.is_enabled()
        create.click()
        page.wait_for_url("**/r/*", timeout=5000)
        room = page.url.rsplit("/", 1)[1]
        assert page.locator("#room-link").input_value() == f"{stack.url}/r/{room}"
        assert page.get_by_role("button", name="Copy link").is_visible()
        assert page.evaluate("document.activeElement.id") == "name"  # focus moved to the form
        # The preview plays the fake camera; every device can be chosen.
        page.wait_for_function("() => document.querySelector('#preview').videoWidth > 0", timeout=10000)
        assert page.locator("#camera-select option").count() >= 1
        assert page.locator("#mic-select option").count() >= 1
        # Every form control has an accessible name.
        unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, button')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.outerHTML)""")
        assert unlabelled == []
        page.get_by_label("Your name").fill("Lan")
        page.screenshot(path=str(artifacts / "lobby.png"), full_page=True)
        for name in ("Your name", "Camera", "Microphone", "Hear the translation spoken"):
            assert page.get_by_label(name).first.is_visible()
        assert page.get_by_role("button", name="Join").is_visible()
        assert page.evaluate(CONTRAST) == []  # WCAG AA text contrast

        # Keyboard: Tab moves through the form in reading order.
        page.get_by_label("Your name").focus()
        order = []
        for _ in range(4):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.name || document.activeElement.id"))
        assert order[0] == "speak" and "captions" in order and "hear" in order, order

        # The interface in Vietnamese, and it stays so on the next visit.
        page.get_by_label("Interface language").select_option("vi")
        assert page.get_by_role("button", name="Tham gia").is_visible()
        assert page.get_by_label("Tên của bạn").is_visible()
        assert page.evaluate("document.documentElement.lang") == "vi"
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=5000)
        assert page.get_by_role("heading", name="Tham gia cuộc gọi").is_visible()
        assert errors == []
    finally:
        browser.close()
