"""The browser tests' stack: real Redis, a jb-gateway process, the stt (VAD + Whisper tiny.en),
mt (stand-in OPUS-MT) and tts services, the signaling app serving the page, and Debian's
Chromium driven by Playwright (never a downloaded browser) with fake camera and microphone."""

from __future__ import annotations

import os
import shutil
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, ServedApp
from gateway_process import start_gateway, stop_gateway
from jbcalling.speech.layout import DEV_MT, DEV_OFFLINE_VI, DEV_VOICES, DEV_WHISPER_EN
from speech_fixtures import models_dir, package_dir, read_wav, resample  # noqa: F401

CHROMIUM = os.environ.get("JB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"
MAX_PARTICIPANTS = 3


# WCAG 2.1 contrast of every visible text element against the first opaque background behind
# it; returns those under 4.5:1 (disabled controls are exempt).
CONTRAST = """() => {
    const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = c => rgb(c).slice(0, 3).map(v => v / 255)
        .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((acc, v, i) => acc + v * [0.2126, 0.7152, 0.0722][i], 0);
    const bg = el => { for (let e = el; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor, v = rgb(c);
        if (v.length === 3 || (v.length === 4 && v[3] > 0.5)) return c; }
        return getComputedStyle(document.body).backgroundColor; };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
        const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !el.getClientRects().length || el.disabled || el.closest('[disabled]')) continue;
        if (getComputedStyle(el).visibility === 'hidden') continue;
        const a = lum(getComputedStyle(el).color), b = lum(bg(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) bad.push([el.tagName, el.className, el.textContent.slice(0, 30), ratio.toFixed(2)]);
    }
    return bad; }"""


@dataclass
class Stack:
    url: str          # signaling: the page and the API
    gateway: str
    services: dict[str, ServedApp]  # stt, mt, tts: a test may stop one to see the page degrade


def _wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The speaker's microphone: 10 s of real human English speech (beckett.wav), between
    silences so that recognition finds the end of it; Chromium plays the file in a loop."""
    samples, rate = read_wav(package_dir("moonshine_onnx") / "assets" / "beckett.wav")
    speech = resample(samples, rate, 48000)
    quiet = np.zeros(48000 * 2, dtype=np.int16)
    return _wav(tmp_path_factory.mktemp("audio") / "speech.wav",
                np.concatenate([quiet, speech, quiet, quiet]), 48000)


@pytest.fixture(scope="session")
def silent_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The listeners' microphones: silence (Chromium's default fake microphone beeps)."""
    return _wav(tmp_path_factory.mktemp("audio") / "silence.wav",
                np.zeros(48000 * 2, dtype=np.int16), 48000)



@pytest.fixture(scope="module")
def stack(redis_url: str, models_dir: Path,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from jbcalling.mt.app import create_app as create_mt
    from jbcalling.mt.settings import MtSettings
    from jbcalling.signaling.app import create_app as create_signaling
    from jbcalling.signaling.settings import SignalingSettings
    from jbcalling.stt.app import create_app as create_stt
    from jbcalling.stt.settings import SttSettings
    from jbcalling.tts.app import create_app as create_tts
    from jbcalling.tts.settings import TtsSettings

    # The call has three English speakers at most (two of them silent): a capacity fixed at 3,
    # since the start-up probe on a loaded CI machine measures as little as one stream, which
    # a silent listener's stream then takes before the speaker's (captions "busy").
    stt = create_stt(SttSettings(models_dir=models_dir, capacity_streams=MAX_PARTICIPANTS,
                                 languages={"en": f"vad-whisper:{DEV_WHISPER_EN}",
                                            "vi": f"vad-sherpa:{DEV_OFFLINE_VI}"}))
    mt = create_mt(MtSettings(models_dir=models_dir, pairs=DEV_MT, beam_size=1,
                              max_decoding_length=12, redis_url=redis_url))
    tts = create_tts(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with ExitStack() as stack:
        services = {name: stack.enter_context(ServedApp(app))
                    for name, app in (("stt", stt), ("mt", mt), ("tts", tts))}
        proc, gateway = start_gateway(redis_url, log, urls={k: v.url for k, v in services.items()},
                                           max_peers="4")
        try:
            settings = SignalingSettings(redis_url=redis_url, jwt_secret="b" * 40,
                                         gateway_url=gateway, max_participants=MAX_PARTICIPANTS,
                                         mt_url=services["mt"].url)
            sig = stack.enter_context(ServedApp(create_signaling(settings)))
            yield Stack(sig.url, gateway, services)
        finally:
            stop_gateway(proc)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, ARTIFACTS / "gateway.log")  # to read after a failure


@pytest.fixture(scope="module")  # one driver at a time: each module imports this fixture anew
def playwright() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash tools/setup.sh` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def launch(playwright: Any, microphone_wav: Path, screen_share: bool = False) -> Any:
    """A headless Chromium whose fake camera shows a test pattern and whose fake microphone
    plays ``microphone_wav`` (one file per browser: speakers and listeners get their own).
    ``screen_share``: getDisplayMedia picks the (fake) screen without asking."""
    share = ["--use-fake-ui-for-media-stream", "--auto-select-desktop-capture-source=Entire screen"]
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={microphone_wav}",
              "--autoplay-policy=no-user-gesture-required", *(share if screen_share else [])])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
