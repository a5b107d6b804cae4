"""Every job file rendered by Nomad's own parser (`nomad job run -output`, offline) with
jobs/vars/dev.hcl and jobs/vars/prod.hcl, and what production needs of the result: dynamic ports
but the ingress's, the release's venv, secrets only in secrets/ files, paths inside the exec
chroot; and nginx's rendered configuration accepted by `nginx -t`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jbcalling.cli import endpoints, render, secrets
from jbcalling.cli.devcluster import find_binary

pytestmark = pytest.mark.unit
JOBS = Path(__file__).resolve().parents[2] / "jobs"
SERVICES = render.known_services(JOBS)
RELEASE = "1.2.3"


@cache
def rendered(service: str, env: str) -> dict[str, Any]:
    """The job as Nomad parses it, with what jbctl injects (tmp paths stand for dev's) and the
    shared policies filled in, as jbctl's render does."""
    return render.apply_policies(parsed(service, env), parsed(service, env, render.POLICIES))


@cache
def parsed(service: str, env: str, file_name: str = "") -> dict[str, Any]:
    hcl = render.job_source(JOBS, service, file_name)
    declared = render.declared_variables(hcl)
    var_text = (JOBS / "vars" / f"{env}.hcl").read_text()
    # the CLI, unlike the API jbctl uses, refuses a var file's values that this job lacks
    lines = var_text.splitlines()
    for name, (first, last) in render._assigned(var_text).items():
        if name not in declared:
            lines[first:last + 1] = [""] * (last + 1 - first)
    injected = {"release": RELEASE,
                "app_root": f"/opt/jbcalling/releases/{RELEASE}" if env == "prod" else "/dev-venv"}
    if env == "dev":
        injected |= {"host_volume_root": "/dev-volumes", "consul_http_addr": "http://127.0.0.1:18500"}
    variables = render.build_variables("\n".join(lines),
                                       {k: v for k, v in injected.items() if k in declared},
                                       {})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vars.hcl").write_text(variables)
        (Path(tmp) / "job.hcl").write_text(hcl)
        res = subprocess.run([find_binary("nomad"), "job", "run", "-output",
                              f"-var-file={Path(tmp) / 'vars.hcl'}", str(Path(tmp) / "job.hcl")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"{service} ({env}): {res.stderr}"
    return dict(json.loads(res.stdout)["Job"])


def _tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for g in job["TaskGroups"] for t in g["Tasks"]]


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("service", SERVICES)
def test_every_job_renders_owned_and_stamped(service: str, env: str) -> None:
    job = rendered(service, env)
    assert job["ID"] == service
    assert job["Meta"]["jb_managed_by"] == "jbctl" and job["Meta"]["jb_release"] == RELEASE
    driver = "exec" if env == "prod" else "raw_exec"
    assert {t["Driver"] for t in _tasks(job)} == {driver}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_job_has_the_shared_policies_but_where_it_says_otherwise(env: str) -> None:
    shared = parsed("mt", env, render.POLICIES)
    for service in SERVICES:
        job = rendered(service, env)
        update = job["Update"]
        assert all(update[k] is not None for k, v in shared["Update"].items() if v is not None)
        # no canary where one instance holds rooms, data or fixed ports
        single = ("gateway", "redis", "ingress", "prometheus", "alertmanager")
        assert (update["Canary"] or 0) == (0 if service in single else 1), service
        assert update["MinHealthyTime"] == shared["Update"]["MinHealthyTime"]
        for group in job["TaskGroups"]:
            restart, reschedule = group["RestartPolicy"], group["ReschedulePolicy"]
            assert reschedule == shared["TaskGroups"][0]["ReschedulePolicy"]
            assert restart["Delay"] == (1 if service == "stt" else 5) * 1_000_000_000, service
            assert restart["Attempts"] == 3 and restart["Mode"] == "delay"


def test_deploy_order_puts_the_ingress_after_signaling() -> None:
    assert SERVICES[:3] == ["redis", "signaling", "ingress"] and "ingress" in render.DEPLOY_ORDER


def test_prod_has_no_static_port_but_the_ingress_80_and_443() -> None:
    static = {}
    for service in SERVICES:
        for group in rendered(service, "prod")["TaskGroups"]:
            for net in group.get("Networks") or []:
                for port in net.get("ReservedPorts") or []:
                    static[(service, port["Label"])] = port["Value"]
    assert static == {("ingress", "http"): 80, ("ingress", "https"): 443}


def test_prod_runs_the_release_venv_and_paths_inside_the_exec_chroot() -> None:
    for service in SERVICES:
        for task in _tasks(rendered(service, "prod")):
            command = task["Config"]["command"]
            exporter = {("redis", "exporter"): "/usr/bin/prometheus-redis-exporter",
                        ("ingress", "probe"): "/usr/bin/prometheus-blackbox-exporter"}
            if (service, task["Name"]) in exporter:  # Debian's, beside the service
                assert command == exporter[(service, task["Name"])]
            elif service == "redis":
                assert command == "/usr/bin/redis-server"
            elif service in ("prometheus", "alertmanager"):  # Debian's, not the release's
                assert command == {"prometheus": "/usr/bin/prometheus",
                                   "alertmanager": "/usr/bin/prometheus-alertmanager"}[service]
            elif service == "ingress":
                assert command == "/usr/sbin/nginx"
                assert task["Config"]["cap_add"] == ["net_bind_service"]
                assert task["Config"]["cap_drop"] == ["all"]
                assert "${NOMAD_TASK_DIR}/nginx.conf" in task["Config"]["args"]
            else:
                assert command.startswith(f"/opt/jbcalling/releases/{RELEASE}/bin/jb"), command
            for key, value in (task.get("Env") or {}).items():
                if key.endswith("MODELS_DIR"):
                    assert value == "/models" and any(
                        m["Destination"] == "/models" for m in task["VolumeMounts"])
    ingress = rendered("ingress", "prod")
    (group,) = ingress["TaskGroups"]
    assert group["Volumes"]["acme"] == {**group["Volumes"]["acme"], "Source": "acme",
                                        "ReadOnly": True}
    conf = _template(ingress, "local/nginx.conf")
    assert "root /acme;" in conf and 'env "NOMAD_TASK_DIR"' in conf


def test_the_dev_ingress_is_plain_http_without_the_acme_volume() -> None:
    job = rendered("ingress", "dev")
    (group,) = job["TaskGroups"]
    assert not group.get("Volumes")
    # nginx's one port and its prober's, dynamic (the dev cluster's nginx sits beside other
    # clusters' on one machine)
    assert not group["Networks"][0]["ReservedPorts"]
    assert [p["Label"] for p in group["Networks"][0]["DynamicPorts"]] == ["http", "probe"]
    # nginx.conf, and the operator's credentials for /prometheus/ (no certificate in dev)
    assert [t["DestPath"] for t in _tasks(job)[0]["Templates"]] == ["local/nginx.conf",
                                                                    "secrets/operator.conf"]
    assert "return 301" not in _template(job, "local/nginx.conf")


def _template(job: dict[str, Any], dest: str) -> str:
    for task in _tasks(job):
        for tpl in task.get("Templates") or []:
            if tpl["DestPath"] == dest:
                return str(tpl["EmbeddedTmpl"])
    raise AssertionError(f"no template {dest}")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_secrets_reach_tasks_only_through_files_in_secrets(env: str) -> None:
    shared = set()
    for service in SERVICES:
        job = rendered(service, env)
        shared |= set(secrets.wanted_shared(job))
        for task in _tasks(job):
            for tpl in task.get("Templates") or []:
                if "nomadVar" in tpl["EmbeddedTmpl"]:
                    assert tpl["DestPath"].startswith("secrets/"), (service, tpl["DestPath"])
                    if not tpl["Envvars"]:  # a file the program reads: its user's, 0600
                        assert tpl["Perms"] == "0600" and tpl["Uid"] == 65534, (service, tpl)
            # the job's env block (visible in the job spec and the UI) names no secret
            for key in task.get("Env") or {}:
                assert not re.fullmatch(r"JB_[A-Z]+_(API_TOKEN|GATEWAY_TOKEN|REDIS_URL|\w*SECRET|"
                                        r"\w*PASSWORD|TLS_\w+)", key), (service, key)
    assert shared == {"redis_password", "gateway_token"}
    # every Redis client's URL carries the password
    for service, dest in (("signaling", "secrets/redis.env"), ("mt", "secrets/redis.env"),
                          ("gateway", "secrets/gateway.env")):
        tpl = _template(rendered(service, env), dest)
        assert "redis://:{{ $pw }}@" in tpl and ".redis_password" in tpl, service
    assert "requirepass {{ .redis_password }}" in _template(rendered("redis", env),
                                                            "secrets/redis.conf")
    # signaling reads its own keys by name: nothing else of nomad/jobs/signaling (no TLS key)
    sig = _template(rendered("signaling", env), "secrets/signaling.env")
    assert '(eq .K "jwt_secret") (eq .K "turn_secret")' in sig and "tls" not in sig


def test_the_prod_ingress_reads_its_certificate_from_nomad_variables() -> None:
    job = rendered("ingress", "prod")
    for dest, key in (("secrets/tls.crt", "tls_cert"), ("secrets/tls.key", "tls_key")):
        tpl = next(t for t in _tasks(job)[0]["Templates"] if t["DestPath"] == dest)
        assert f'nomadVar "nomad/jobs/ingress" }}}}{{{{ .{key} }}}}' in tpl["EmbeddedTmpl"]
        assert tpl["Perms"] == "0600" and tpl["ChangeMode"] == "signal"
        assert tpl["ChangeSignal"] == "SIGHUP"


def _as_consul_template_would(conf: str, env: dict[str, str], servers: list[str]) -> str:
    """The few template actions nginx.conf uses, evaluated for a known environment."""
    conf = re.sub(r'\{\{ if ne \(env "NOMAD_PORT_https"\) "443" \}\}:\{\{ env "NOMAD_PORT_https" \}\}'
                  r"\{\{ end \}\}", "" if env.get("NOMAD_PORT_https") == "443"
                  else ":" + env.get("NOMAD_PORT_https", ""), conf)
    upstream = "".join(f"server {s} max_fails=2 fail_timeout=5s;\n" for s in servers)
    conf = re.sub(r'\{\{ range service "signaling" \}\}.*?\{\{ end \}\}', upstream, conf, flags=re.S)
    conf = re.sub(r'\{\{ range service "prometheus" \}\}.*?\{\{ end \}\}',
                  "server 10.0.0.2:9090;\n", conf, flags=re.S)
    conf = re.sub(r'\{\{ env "(\w+)" \}\}', lambda m: env[m.group(1)], conf)
    assert "{{" not in conf, conf
    return conf


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_nginx_accepts_the_rendered_configuration(env: str, tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    job = rendered("ingress", env)
    (tmp_path / "local").mkdir()
    (tmp_path / "secrets").mkdir()
    values = {"NOMAD_TASK_DIR": str(tmp_path / "local"), "NOMAD_SECRETS_DIR": str(tmp_path / "secrets"),
              "NOMAD_IP_http": "127.0.0.1", "NOMAD_PORT_http": "18080", "NOMAD_PORT_https": "18443"}
    conf = _as_consul_template_would(_template(job, "local/nginx.conf"), values,
                                     ["10.0.0.1:21000", "10.0.0.1:21001"])
    (tmp_path / "local" / "nginx.conf").write_text(conf)
    # the operator.conf consul-template renders from the Nomad Variable (password "pw")
    operator = re.sub(r"\{\{ with nomadVar.*\{\{ end \}\}", '"Basic b3BlcmF0b3I6cHc=" 1;',
                      _template(job, "secrets/operator.conf"))
    assert "{{" not in operator, operator
    (tmp_path / "secrets" / "operator.conf").write_text(operator)
    if env == "prod":
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=call.test",
                        "-keyout", str(tmp_path / "secrets" / "tls.key"),
                        "-out", str(tmp_path / "secrets" / "tls.crt")],
                       capture_output=True, check=True, timeout=60)
    res = subprocess.run([nginx, "-t", "-c", str(tmp_path / "local" / "nginx.conf"), "-e", "stderr"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and "test is successful" in res.stderr, res.stderr
    assert "hash $jb_route consistent;" in conf and "server 10.0.0.1:21001" in conf


def test_var_files_lay_over_the_environment_file() -> None:
    base = 'driver = "exec"\nstt_languages = {\n  "en" = "a"\n}\nmt_count = 1\n'
    site = 'stt_languages = {\n  "en" = "b"\n}\nstt_threads = 2\n'
    out = render.layer_var_files(base, [site, "mt_count = 3\n"])
    assert '"a"' not in out and '"b"' in out and "mt_count = 1" not in out
    assert "mt_count = 3" in out and 'driver = "exec"' in out and "stt_threads = 2" in out


def test_the_public_url_of_an_ingress_instance() -> None:
    def inst(meta: dict[str, str], port: int = 80) -> dict[str, Any]:
        return {"Service": {"Address": "10.0.0.5", "Port": port, "Meta": meta},
                "Node": {"Address": "10.0.0.5"}, "Checks": [{"Status": "passing"}]}

    assert endpoints.url("ingress", inst({"scheme": "https", "public_port": "443"})) == \
        "https://10.0.0.5"
    assert endpoints.url("ingress", inst({"scheme": "http", "public_port": "28001"}, 28001)) == \
        "http://10.0.0.5:28001"
    failing = {**inst({"scheme": "https", "public_port": "443"}), "Checks": [{"Status": "critical"}]}
    assert endpoints.public_urls([failing]) == []
    assert endpoints.url("redis", inst({}, 6379)) == "redis://10.0.0.5:6379"
