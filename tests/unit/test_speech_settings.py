"""The speech services' settings: env prefixes, JSON maps, and clear exits on bad values."""

from __future__ import annotations

import pytest

from jbcalling.common.settings import load
from jbcalling.mt.settings import MtSettings
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.settings import TtsSettings

pytestmark = pytest.mark.unit


def test_maps_come_from_json(monkeypatch: pytest.MonkeyPatch, clean_environ: None) -> None:
    monkeypatch.setenv("JB_MT_PAIRS", '{"en-vi": "m1"}')
    monkeypatch.setenv("JB_TTS_VOICES", '{"vi": "v1"}')
    monkeypatch.setenv("JB_STT_LANGUAGES", '{"vi": "vad-sherpa:z1"}')
    assert load(MtSettings).pairs == {"en-vi": "m1"}
    assert load(TtsSettings).voices == {"vi": "v1"}
    assert load(SttSettings).languages == {"vi": "vad-sherpa:z1"}


@pytest.mark.parametrize(("cls", "var", "value"), [
    (SttSettings, "JB_STT_LANGUAGES", '{"en": "bogus:model"}'),
    (SttSettings, "JB_STT_VAD_MIN_SILENCE_MS", "10"),
    (MtSettings, "JB_MT_TRANSLATORS", "0"),
    (TtsSettings, "JB_TTS_MAX_CHARS", "-1"),
])
def test_bad_value_exits_2_naming_the_variable(cls: type, var: str, value: str,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              clean_environ: None) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as exc:
        load(cls)
    assert exc.value.code == 2
    assert var in capsys.readouterr().err
