"""The rules of jobs/prometheus.nomad.hcl, checked by Debian's promtool (package prometheus).

The rules file is the job's rules.yml template with the job's variables filled in from each
environment's var file: promtool checks its syntax, and ``promtool test rules`` runs the
recording rule and the "no healthy instance" alert over series written here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "jobs" / "prometheus.nomad.hcl"


def _defaults(hcl: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r'^variable "([^"]+)" \{(.*?)^\}', hcl, re.M | re.S):
        d = re.search(r"^\s*default\s*=\s*(.+)$", m.group(2), re.M)
        if d:
            out[m.group(1)] = d.group(1).strip().strip('"')
    return out


def _assigned(var_file: Path) -> dict[str, str]:
    return {m.group(1): m.group(2).strip().strip('"')
            for m in re.finditer(r"^([a-z_0-9]+)\s*=\s*(.+?)\s*(#.*)?$", var_file.read_text(), re.M)}


def rules_yaml(env: str) -> str:
    hcl = JOB.read_text()
    block = re.search(r'destination\s+= "local/rules.yml".*?<<-EOT\n(.*?)^\s*EOT$', hcl, re.S | re.M)
    assert block, "no rules.yml template in jobs/prometheus.nomad.hcl"
    values = {**_defaults(hcl), **_assigned(ROOT / "jobs" / "vars" / f"{env}.hcl")}

    def var(m: re.Match[str]) -> str:
        assert m.group(1) in values, f"rules use undeclared variable {m.group(1)}"
        return values[m.group(1)]

    text = re.sub(r"\$\{var\.([a-z_0-9]+)\}", var, textwrap.dedent(block.group(1)))
    assert "${" not in text, "an HCL interpolation other than var.* is left in the rules"
    return text


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run tools/setup.sh (Debian package prometheus)"
    return found


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rules_pass_promtool_check(env: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(rules_yaml(env))
    res = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 8 rules found" in res.stdout, res.stdout


TESTS = """
rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      # stt answers for 2 minutes, then hangs; mt answers throughout
      - series: 'up{job="stt", instance="10.0.0.2:2000"}'
        values: '1x8 0x20'
      - series: 'up{job="mt", instance="10.0.0.2:2001"}'
        values: '1x28'
      # redis's exporter and the ingress's prober answer throughout; after 2 minutes the
      # exporter finds Redis down and the prober gets no answer from nginx
      - series: 'up{job="redis", instance="10.0.0.1:3000"}'
        values: '1x28'
      - series: 'redis_up{job="redis", instance="10.0.0.1:3000"}'
        values: '1x8 0x20'
      - series: 'up{job="ingress", instance="10.0.0.1:3001"}'
        values: '1x28'
      - series: 'probe_success{job="ingress", instance="10.0.0.1:3001"}'
        values: '1x8 0x20'
      # 20 final captions a minute, all between 0.5 and 1 s
      - series: 'jb_caption_latency_seconds_bucket{kind="final", source="en", lang="en", le="0.5"}'
        values: '0x28'
      - series: 'jb_caption_latency_seconds_bucket{kind="final", source="en", lang="en", le="1"}'
        values: '0+5x28'
      - series: 'jb_caption_latency_seconds_bucket{kind="final", source="en", lang="en", le="+Inf"}'
        values: '0+5x28'
    alert_rule_test:
      - eval_time: 1m
        alertname: ServiceNoHealthyInstance
        exp_alerts: []
      - eval_time: 6m
        alertname: ServiceNoHealthyInstance
        exp_alerts:
          - exp_labels: {severity: critical, job: stt}
            exp_annotations: ANNOTATIONS(stt)
          - exp_labels: {severity: critical, job: redis}
            exp_annotations: ANNOTATIONS(redis)
          - exp_labels: {severity: critical, job: ingress}
            exp_annotations: ANNOTATIONS(ingress)
    promql_expr_test:
      - expr: jb:caption_latency_seconds:p50_5m
        eval_time: 6m
        exp_samples:
          - labels: 'jb:caption_latency_seconds:p50_5m{kind="final", source="en", lang="en"}'
            value: 0.75
"""


def _annotations(m: re.Match[str]) -> str:
    job = m.group(1)
    return json.dumps({
        "summary": f"{job} has no healthy instance",
        "description": f"No instance of {job} answers Prometheus (redis and the ingress: the "
                       "exporter beside it finds the service down), or none is registered in "
                       f"Consul. Look at `jbctl status` and `jbctl logs {job} --stderr`; a stopped "
                       f"job comes back with `jbctl deploy {job}`. See docs/operations.md, Alerts."})


def test_the_alert_and_the_recording_rule_on_written_series(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rules_yaml("prod"))
    (tmp_path / "tests.yml").write_text(re.sub(r"ANNOTATIONS\((\w+)\)", _annotations, TESTS))
    res = subprocess.run([promtool(), "test", "rules", "tests.yml"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout
