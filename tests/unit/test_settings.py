"""Settings: HashiCorp variable names, address normalisation, redaction."""

import pytest

from jbcalling.cli.settings import CliSettings

pytestmark = pytest.mark.unit


def test_hashicorp_names_and_redaction(clean_environ: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "nomad.example:4646")
    monkeypatch.setenv("NOMAD_TOKEN", "abcd-secret-token")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "https://c.example:8501/")
    s = CliSettings()
    assert s.nomad_addr == "http://nomad.example:4646"
    assert s.consul_http_addr == "https://c.example:8501"
    shown = s.redacted()
    assert "secret" not in str(shown) and shown["nomad_token"].startswith("abcd")


def test_bad_env_is_rejected(clean_environ: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JB_ENV", "staging")
    with pytest.raises(ValueError):
        CliSettings()
