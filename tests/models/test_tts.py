"""tts over its own HTTP API: the real Piper joe voice (PyPI) and the stand-in Vietnamese voice."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from jbcalling.speech.layout import DEV_VOICES
from jbcalling.speech.standin_piper import HOP
from jbcalling.tts.app import create_app
from jbcalling.tts.engine import Voice
from jbcalling.tts.settings import TtsSettings
from speech_fixtures import models_dir  # noqa: F401

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def tts_app(models_dir: Path):  # noqa: F811
    return create_app(TtsSettings(models_dir=models_dir, voices=DEV_VOICES))


def pcm(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.frombuffer(r.content, dtype="<i2")


def test_english_joe_voice_streams_pcm_and_wav(tts_app, serve, clean_environ) -> None:
    with serve(tts_app) as srv:
        url = srv.url + "/v1/synthesize"
        text = "Hello there. This is the joe voice speaking."
        r = httpx.post(url, json={"lang": "en", "text": text}, timeout=60)
        audio = pcm(r)
        assert r.headers["x-sample-rate"] == "22050"
        assert r.headers["content-type"].startswith("audio/L16")
        seconds = len(audio) / 22050
        assert 1.5 < seconds < 8, seconds
        assert np.abs(audio).max() > 10000  # normalized speech, not silence
        w = httpx.post(url, json={"lang": "en", "text": text, "format": "wav"}, timeout=60)
        assert w.headers["content-type"] == "audio/wav"
        assert w.content[:4] == b"RIFF" and w.content[8:12] == b"WAVE"
        channels, rate = struct.unpack("<HI", w.content[22:28])
        assert (channels, rate) == (1, 22050)
        # VITS samples its durations (noise_w): the same text varies a little in length
        assert abs(len(w.content) - 44 - len(r.content)) < 0.15 * len(r.content)
        fast = pcm(httpx.post(url, json={"lang": "en", "text": text, "rate": 2.0}, timeout=60))
        assert 0.35 < len(fast) / len(audio) < 0.7
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
        assert 'jb_tts_first_audio_seconds_count{lang="en"}' in metrics


def test_vietnamese_uses_pipers_real_phonemization(models_dir: Path, tts_app, serve,  # noqa: F811
                                                   clean_environ) -> None:
    name = DEV_VOICES["vi"]
    voice = Voice("vi", name, models_dir / name, 1)
    text = "Xin chào các bạn thân mến, hôm nay trời đẹp quá. Chúng ta đi chơi nhé!"
    sentences = voice.phonemize(text)
    assert len(sentences) == 2 and len(voice.chunks(text)) == 3  # the first cut at its comma
    ipa = "".join(sentences[0])
    assert "tʃ" in ipa and "a\u02d0" in ipa, ipa  # espeak-ng's Vietnamese, not English letters
    id_map = voice.voice.config.phoneme_id_map
    assert all(p in id_map for s in sentences for p in s), "a phoneme the voice cannot say"
    ids = sum(len(voice.voice.phonemes_to_ids(s)) for s in voice.chunks(text))
    with serve(tts_app) as srv:
        r = httpx.post(srv.url + "/v1/synthesize", json={"lang": "vi", "text": text}, timeout=60)
        assert r.headers["x-voice"] == name
        assert len(pcm(r)) == ids * HOP  # one stand-in frame per phoneme id, every chunk
        ready = httpx.get(srv.url + "/ready", timeout=10).json()
        assert ready["checks"] == {"en": "ok", "vi": "ok (stand-in)"}


def test_bad_input_is_a_clear_error_and_the_service_stays_up(tts_app, serve, clean_environ) -> None:
    with serve(tts_app) as srv:
        url = srv.url + "/v1/synthesize"

        def post(**body: object) -> httpx.Response:
            return httpx.post(url, json=body, timeout=30)

        r = post(lang="fr", text="Bonjour")
        assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_language"
        assert post(lang="en", text="").status_code == 422
        assert post(lang="en", text=" \n ").json()["error"]["code"] == "empty_text"
        r = post(lang="en", text="a" * 1001)
        assert r.status_code == 413 and r.json()["error"]["limit_chars"] == 1000
        # far over: the body limit answers before the body is read (jbcalling/common/limits.py)
        r = post(lang="en", text="a" * 100_000)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        assert r.json()["error"]["limit_bytes"] < 100_000
        assert post(lang="en", text="Hi.", rate=5).status_code == 422
        assert post(lang="en", text="Hi.", format="mp3").status_code == 422
        assert httpx.get(srv.url + "/health", timeout=10).status_code == 200
        assert post(lang="en", text="Still here.").status_code == 200


def test_missing_voice_names_files_and_command(tmp_path: Path, serve, clean_environ) -> None:
    app = create_app(TtsSettings(models_dir=tmp_path, voices={"en": "en_US-joe-medium"}))
    with serve(app) as srv:
        r = httpx.post(srv.url + "/v1/synthesize", json={"lang": "en", "text": "Hi."}, timeout=10)
        assert r.status_code == 503
        msg = r.json()["error"]["message"]
        assert "en_US-joe-medium.onnx" in msg and "jbctl models pull en_US-joe-medium" in msg
        ready = httpx.get(srv.url + "/ready", timeout=10)
        assert ready.status_code == 503 and "jbctl models pull" in ready.json()["checks"]["en"]


def test_busy_is_a_503_and_slots_come_back(models_dir: Path, serve, clean_environ) -> None:  # noqa: F811
    app = create_app(TtsSettings(models_dir=models_dir, voices=DEV_VOICES, max_pending=1))
    long_text = " ".join(["This sentence keeps the only synthesis slot busy."] * 18)  # ~3 s of work
    with serve(app) as srv:
        url = srv.url + "/v1/synthesize"
        with httpx.stream("POST", url, json={"lang": "en", "text": long_text}, timeout=60) as first:
            assert first.status_code == 200
            body = first.iter_bytes()  # kept: a dropped iterator closes the response
            next(body)  # the first sentence arrived: the slot is taken
            busy = httpx.post(url, json={"lang": "en", "text": "Hi."}, timeout=30)
            assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
            assert busy.headers["retry-after"] == "1"
        # the first stream is closed (read or not): its slot is free again
        for _ in range(50):
            if httpx.get(srv.url + "/ready", timeout=10).json()["load"]["pending"] == 0:
                break
            time.sleep(0.1)
        assert httpx.post(url, json={"lang": "en", "text": "Hi."}, timeout=30).status_code == 200
