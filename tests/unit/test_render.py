"""Rendering inputs (pure): var files, --var overrides, service resolution, ownership."""

from pathlib import Path

import pytest

from jbcalling.cli import render
from jbcalling.cli.errors import OwnershipError, UsageError

pytestmark = pytest.mark.unit
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def test_overrides_replace_var_file_lines_and_injected_fill_gaps() -> None:
    var_text = 'driver = "raw_exec"\nsignaling_count = 1\ndatacenters = [\n  "dc1",\n]\n'
    out = render.build_variables(var_text, {"release": "1.2.3", "driver": "exec"},
                                 {"signaling_count": "3", "datacenters": "x"})
    assert 'driver = "raw_exec"' in out  # the var file wins over injected values
    assert "signaling_count = 1" not in out and "signaling_count = 3" in out
    assert '"dc1"' not in out and 'datacenters = "x"' in out  # a multi-line value is replaced whole
    assert 'release = "1.2.3"' in out


def test_var_pairs_must_be_key_value() -> None:
    assert render.parse_var_overrides(["a=b=c"]) == {"a": "b=c"}
    with pytest.raises(UsageError):
        render.parse_var_overrides(["novalue"])
    with pytest.raises(UsageError):
        render.parse_var_overrides(["bad-key=1"])


def test_services_resolve_in_dependency_order() -> None:
    assert render.resolve_services(["signaling", "redis"], JOBS)[:2] == ["redis", "signaling"]
    with pytest.raises(UsageError) as err:
        render.resolve_services(["nope"], JOBS)
    assert "known services" in err.value.hint


def test_overrides_must_be_declared_by_some_job() -> None:
    render.check_overrides({"signaling_count": "2"}, ["redis", "signaling"], JOBS)
    with pytest.raises(UsageError):
        render.check_overrides({"signaling_count": "2"}, ["redis"], JOBS)


def test_a_job_jbctl_did_not_create_is_refused() -> None:
    render.check_owner(None, "redis")
    render.check_owner({"Meta": {"jb_managed_by": "jbctl"}}, "redis")
    with pytest.raises(OwnershipError):
        render.check_owner({"Meta": None}, "redis")


def test_every_job_declares_described_typed_defaulted_variables() -> None:
    import re

    for path in [*JOBS.glob("*.nomad.hcl"), JOBS / render.SHARED_VARIABLES]:
        blocks = re.findall(r'variable "(\w+)" \{(.*?)\n\}', path.read_text(), re.S)
        assert blocks, path
        for name, body in blocks:
            for attr in ("description", "type", "default"):
                assert re.search(rf"^\s*{attr}\s*=", body, re.M), f"{path.name}: {name} lacks {attr}"
