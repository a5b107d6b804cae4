"""``lang=auto`` ("I speak: detect"): stt identifies each utterance's language with the
language-ID stand-in in the real sherpa-onnx engine and decodes it with that language's
recognizer (stt/detecting.py, the production path: the same VAD backend and WebSocket API).

One stream carries an English sentence (the real Piper joe voice) then a Vietnamese one
(espeak-ng): the first final is English (Whisper's words), the second Vietnamese (the offline
stand-in). Built not to tell them apart, the stand-in sends both to the English recognizer: the
routing comes from the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jbcalling.speech import standin_whisper_lid
from jbcalling.speech.layout import DEV_LANGID, DEV_OFFLINE_VI, DEV_VOICES, DEV_WHISPER_EN
from jbcalling.stt.app import create_app
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.engine import Voice
from speech_fixtures import espeak_vi, models_dir, resample, silence, stream_pcm, wer  # noqa: F401

pytestmark = pytest.mark.models
ENGLISH = "Please send me the report before the meeting tomorrow."


def _app(models_dir: Path, langid: str):  # noqa: F811
    return create_app(SttSettings(
        models_dir=models_dir, threads=1, max_backlog_s=120, capacity_streams=2,
        stable_partial_quiet_ms=0, langid_model=langid,
        languages={"en": f"vad-whisper:{DEV_WHISPER_EN}", "vi": f"vad-sherpa:{DEV_OFFLINE_VI}"}))


def _speech(models_dir: Path, tmp_path: Path) -> np.ndarray:  # noqa: F811
    joe = Voice("en", DEV_VOICES["en"], models_dir / DEV_VOICES["en"], 1)
    english = resample(np.frombuffer(b"".join(joe.sentences(ENGLISH)), dtype="<i2"),
                       joe.sample_rate)
    vietnamese = espeak_vi("Chiều nay chúng ta sẽ bàn về kế hoạch của năm sau.", tmp_path)
    return np.concatenate([silence(0.3), english, silence(1.0), vietnamese, silence(1.0)])


def test_each_utterance_goes_to_its_languages_recognizer(models_dir: Path, serve,  # noqa: F811
                                                         tmp_path: Path, clean_environ) -> None:
    speech = _speech(models_dir, tmp_path)
    with serve(_app(models_dir, DEV_LANGID)) as srv:
        messages, code, _ = stream_pcm(srv.url.replace("http://", "ws://")
                                       + "/v1/stream?lang=auto", speech)
    assert code == 1000 and messages[0]["type"] == "ready" and messages[0]["lang"] == "auto"
    finals = [m for m in messages if m["type"] == "final"]
    assert [f["lang"] for f in finals] == ["en", "vi"], finals
    assert wer(ENGLISH, finals[0]["text"]) <= 0.2, finals[0]["text"]
    # partials carry a language too, and a segment's final says the one it was decoded in
    assert all(m["lang"] in ("en", "vi") for m in messages if m["type"] == "partial")


def test_a_model_that_cannot_tell_them_apart_routes_both_alike(models_dir: Path, serve,  # noqa: F811
                                                               tmp_path: Path,
                                                               clean_environ) -> None:
    standin_whisper_lid.build(models_dir / "lid-blind", "tiny", weight=0.0)
    speech = _speech(models_dir, tmp_path)
    with serve(_app(models_dir, "lid-blind")) as srv:
        messages, code, _ = stream_pcm(srv.url.replace("http://", "ws://")
                                       + "/v1/stream?lang=auto", speech)
    finals = [m for m in messages if m["type"] == "final"]
    assert code == 1000 and [f["lang"] for f in finals] == ["en", "en"], finals
