"""The gateway's API token: required when the job says so, with a message saying what to do."""

from __future__ import annotations

import pytest

from jbcalling.common.settings import load
from jbcalling.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit


def test_a_required_token_must_be_set(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JB_GATEWAY_REQUIRE_API_TOKEN", "true")
    monkeypatch.delenv("JB_GATEWAY_API_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        load(GatewaySettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "JB_GATEWAY_API_TOKEN is empty" in err and "jbctl deploy gateway" in err
    monkeypatch.setenv("JB_GATEWAY_API_TOKEN", "t" * 48)
    assert load(GatewaySettings).api_token == "t" * 48


def test_without_the_requirement_an_empty_token_means_no_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JB_GATEWAY_REQUIRE_API_TOKEN", raising=False)
    monkeypatch.delenv("JB_GATEWAY_API_TOKEN", raising=False)
    settings = GatewaySettings()
    assert settings.api_token == "" and settings.require_api_token is False
