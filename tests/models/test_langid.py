"""Spoken-language identification (stt/langid.py) in the real sherpa-onnx engine, with the
Whisper stand-in (speech/standin_whisper_lid.py): English from the real Piper joe voice and
Vietnamese from Debian's espeak-ng, in sentences other than the ones its feature was measured on.
The stand-in built not to tell them apart (feature weight 0) gives one answer for all of them:
the routing comes from what the model computes on the audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jbcalling.speech import standin_whisper_lid
from jbcalling.speech.layout import DEV_LANGID, DEV_VOICES
from jbcalling.speech.modelfiles import MissingModel
from jbcalling.stt.langid import LanguageId, NotALanguageIdModel
from jbcalling.tts.engine import Voice
from speech_fixtures import espeak_vi, models_dir, resample  # noqa: F401

pytestmark = pytest.mark.models

ENGLISH = ["Could everyone please mute their microphones while I present the slides?",
           "The quarterly numbers look better than we expected in March.",
           "I will send the meeting notes to the whole team this afternoon."]
VIETNAMESE = ["Mọi người có thể tắt micro trong khi tôi trình bày không?",
              "Số liệu quý này tốt hơn chúng tôi mong đợi vào tháng ba.",
              "Chiều nay tôi sẽ gửi biên bản cuộc họp cho cả nhóm."]


@pytest.fixture(scope="module")
def utterances(models_dir: Path, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
               ) -> dict[str, list[np.ndarray]]:
    """float32 16 kHz utterances, as the VAD hands them over: "en" (joe), "vi" (espeak-ng)."""
    joe = Voice("en", DEV_VOICES["en"], models_dir / DEV_VOICES["en"], 1)
    english = [resample(np.frombuffer(b"".join(joe.sentences(t)), dtype="<i2"), joe.sample_rate)
               for t in ENGLISH]
    tmp = tmp_path_factory.mktemp("espeak")
    vietnamese = [espeak_vi(t, tmp) for t in VIETNAMESE]
    return {lang: [a.astype(np.float32) / 32768 for a in clips]
            for lang, clips in (("en", english), ("vi", vietnamese))}


def test_standin_tells_joe_english_from_espeak_vietnamese(models_dir: Path,  # noqa: F811
                                                          utterances) -> None:
    lid = LanguageId(DEV_LANGID, models_dir / DEV_LANGID)
    assert lid.standin
    for lang, clips in utterances.items():
        for audio in clips:
            found = lid.identify(audio)
            assert (found.lang, found.reported, found.mapped) == (lang, lang, False)
            assert found.seconds > 0


def test_standin_not_built_to_tell_them_apart_says_the_same_for_both(tmp_path: Path,
                                                                      utterances) -> None:
    standin_whisper_lid.build(tmp_path / "blind", "tiny", weight=0.0)
    lid = LanguageId("blind", tmp_path / "blind")
    answers = {lid.identify(a).reported for clips in utterances.values() for a in clips}
    # Equal logits: sherpa-onnx keeps the first language token, en.
    assert answers == {"en"}


def test_another_language_goes_to_the_fallback_or_the_default(tmp_path: Path,
                                                              utterances) -> None:
    # Built to call espeak-ng's voice Chinese: neither vi nor en.
    standin_whisper_lid.build(tmp_path / "zh", "tiny", favour=("zh", "en"))
    lid = LanguageId("zh", tmp_path / "zh", default="vi")
    vi = utterances["vi"][0]
    found = lid.identify(vi, fallback="en")
    assert (found.lang, found.reported, found.mapped) == ("en", "zh", True)
    found = lid.identify(vi)  # no fallback: the default
    assert (found.lang, found.reported, found.mapped) == ("vi", "zh", True)
    assert lid.identify(utterances["en"][0], fallback="vi").lang == "en"  # vi/en: never mapped
    short = lid.identify(vi[:800], fallback="en")  # 50 ms: nothing to identify
    assert (short.lang, short.reported) == ("en", "")


def test_english_only_whisper_or_missing_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    import onnx

    folder = standin_whisper_lid.build(tmp_path / "tiny.en", "tiny")
    encoder = onnx.load(str(folder / "encoder.onnx"))
    for prop in encoder.metadata_props:
        if prop.key == "is_multilingual":
            prop.value = "0"
    onnx.save(encoder, str(folder / "encoder.onnx"))
    # sherpa-onnx itself would end the process on these models: refused before it loads.
    with pytest.raises(NotALanguageIdModel, match=r"is_multilingual=0\).*sherpa-onnx-whisper-tiny"):
        LanguageId("tiny.en", folder)
    kept = [p for p in encoder.metadata_props if p.key != "n_text_ctx"]
    del encoder.metadata_props[:]
    encoder.metadata_props.extend(kept)
    onnx.save(encoder, str(folder / "encoder.onnx"))
    with pytest.raises(NotALanguageIdModel, match="no metadata n_text_ctx"):
        LanguageId("tiny.en", folder)
    with pytest.raises(MissingModel, match="jbctl models pull nowhere"):
        LanguageId("nowhere", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="default"):
        LanguageId("tiny.en", folder, default="fr")
