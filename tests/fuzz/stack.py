"""The stack every fuzz module attacks: real stt (VAD + Whisper tiny.en), mt (stand-in OPUS-MT),
tts (joe and the stand-in voice) and signaling served in-process by uvicorn, a jb-gateway
process, real Redis. Built once per session (per xdist worker); when the session ends, after
the fuzz modules, a real call goes through it (call.py, conftest.py)."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hypothesis import HealthCheck, settings

from conftest import ServedApp
from gateway_process import start_gateway, stop_gateway
from jbcalling.mt.app import create_app as create_mt
from jbcalling.mt.settings import MtSettings
from jbcalling.signaling.app import create_app as create_signaling
from jbcalling.signaling.settings import WS_RATE_DEFAULTS, SignalingSettings
from jbcalling.speech.layout import DEV_MT, DEV_VOICES, DEV_WHISPER_EN
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.app import create_app as create_tts
from jbcalling.tts.settings import TtsSettings

JWT_SECRET = "fuzz-" + "k" * 40
# Each fuzz test, its share of the stack's start (and of the stand-in models' build on a fresh
# machine) included, ends within this; idle, the slowest takes about 10 s.
TEST_TIMEOUT_S = 240


def seeded(max_examples: int) -> settings:
    """Hypothesis settings of a fuzz test: reproducible in CI (derandomized: the seed comes from
    the test's name; no example database), bounded by ``max_examples``, and no deadline per
    example (2 shared cores: one slow example is not a finding; the tests' own timeouts catch
    a hang)."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@dataclass
class Stack:
    stt: str
    mt: str
    tts: str
    gateway: str
    signaling: str
    gateway_proc: subprocess.Popen[bytes]
    gateway_log: Path
    fuzzed: list[str] = field(default_factory=list)  # the modules that attacked this stack

    @property
    def services(self) -> dict[str, str]:
        return {"stt": self.stt, "mt": self.mt, "tts": self.tts, "gateway": self.gateway,
                "signaling": self.signaling}

    def assert_healthy(self) -> None:
        """Every service answers /health; the gateway process is still the one started."""
        assert self.gateway_proc.poll() is None, \
            "the gateway process died: " + self.gateway_log.read_text()[-2000:]
        for name, url in self.services.items():
            resp = httpx.get(url + "/health", timeout=10)
            assert resp.status_code == 200 and resp.json()["status"] == "alive", (name, resp.text)


def start(exits: ExitStack, models: Path, redis_url: str, tmp: Path) -> Stack:
    # max_backlog_s: minutes of silence sent at once wait for the VAD instead of closing the
    # stream 1013 (test_stt_pcm.py; the 10 s production default has its own test).
    stt = exits.enter_context(ServedApp(create_stt(SttSettings(
        models_dir=models, max_backlog_s=150, languages={"en": f"vad-whisper:{DEV_WHISPER_EN}"}))))
    mt = exits.enter_context(ServedApp(create_mt(MtSettings(
        models_dir=models, pairs=DEV_MT, beam_size=1, max_decoding_length=12,
        redis_url=redis_url))))
    tts = exits.enter_context(ServedApp(create_tts(TtsSettings(models_dir=models,
                                                               voices=DEV_VOICES))))
    log = tmp / "gateway.log"
    proc, gateway = start_gateway(redis_url, log, urls={"stt": stt.url, "mt": mt.url,
                                                        "tts": tts.url})
    exits.callback(stop_gateway, proc)
    # The fuzzers join and send many times a second from one address: with the production
    # limits most frames would be answered `rate_limited` unread (the limits have their own
    # tests); here every frame reaches the parser and the handlers.
    signaling = exits.enter_context(ServedApp(create_signaling(SignalingSettings(
        redis_url=redis_url, jwt_secret=JWT_SECRET, gateway_url=gateway, mt_url=mt.url,
        rate_join_per_min=100_000, rate_create_per_min=100_000,
        rate_room_media_per_min=100_000, rate_room_events_per_min=100_000,
        ws_rate_limits={kind: (10_000.0, 10_000.0) for kind in WS_RATE_DEFAULTS}))))
    return Stack(stt.url, mt.url, tts.url, gateway, signaling.url, proc, log)
