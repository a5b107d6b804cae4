"""benchmarks/gateway_vs_janus.py --gateway-env: each gateway once per setting, named by it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# appended, not prepended: a benchmark's module never shadows a test helper of the same name
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import gateway_vs_janus

pytestmark = pytest.mark.unit


def test_each_gateway_runs_once_per_setting_with_its_variables() -> None:
    gateways = {"gateway@a": ("aaa", {"PYTHONPATH": "/a"}), "gateway@b": ("bbb", {})}
    out = gateway_vs_janus.with_settings(
        gateways, ["JB_GATEWAY_PACING_BURST=0", "JB_GATEWAY_PACING_BURST=8,JB_X=a=b"])
    assert out == {
        "gateway@a[JB_GATEWAY_PACING_BURST=0]": (
            "aaa with JB_GATEWAY_PACING_BURST=0",
            {"PYTHONPATH": "/a", "JB_GATEWAY_PACING_BURST": "0"}),
        "gateway@b[JB_GATEWAY_PACING_BURST=0]": (
            "bbb with JB_GATEWAY_PACING_BURST=0", {"JB_GATEWAY_PACING_BURST": "0"}),
        "gateway@a[JB_GATEWAY_PACING_BURST=8,JB_X=a=b]": (
            "aaa with JB_GATEWAY_PACING_BURST=8,JB_X=a=b",
            {"PYTHONPATH": "/a", "JB_GATEWAY_PACING_BURST": "8", "JB_X": "a=b"}),
        "gateway@b[JB_GATEWAY_PACING_BURST=8,JB_X=a=b]": (
            "bbb with JB_GATEWAY_PACING_BURST=8,JB_X=a=b",
            {"JB_GATEWAY_PACING_BURST": "8", "JB_X": "a=b"}),
    }
    assert gateway_vs_janus.with_settings(gateways, []) is gateways


@pytest.mark.parametrize("bad", ["JB_GATEWAY_PACING_BURST", "=8", "A=1,,B=2"])
def test_a_setting_that_is_not_var_equals_value_is_refused_by_name(bad: str) -> None:
    with pytest.raises(SystemExit, match=r"--gateway-env .*write VAR=VALUE"):
        gateway_vs_janus.with_settings({"gateway": ("x", {})}, [bad])
