"""Sentence splitting and normalization shared by mt and tts."""

import pytest

from jbcalling.speech.text import normalize, sentences

pytestmark = pytest.mark.unit


def test_sentences_split_on_terminators_only() -> None:
    assert sentences("Hello there.  How are you?I am fine") == ["Hello there.", "How are you?I am fine"]
    assert sentences("Xin chào! Bạn khỏe không?") == ["Xin chào!", "Bạn khỏe không?"]
    assert sentences("   ") == []


def test_normalize_is_nfc_and_collapses_space() -> None:
    decomposed = "Vie\u0302\u0323t"  # Việt, decomposed
    assert normalize(f"  {decomposed}\n nam ") == "Việt nam"
