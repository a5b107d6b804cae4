"""jbctl's one settings object: where the cluster is and how to talk to it.

The HashiCorp variables keep the names their own tools use (NOMAD_ADDR, NOMAD_TOKEN,
NOMAD_CACERT, CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT); jbctl's own start with JB_.
Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jbcalling.common.version import __version__

RELEASES_ROOT = "/opt/jbcalling/releases"


def _repo_root() -> Path:
    # cli/jbcalling/cli/settings.py -> the checkout's root, when run from a source tree
    return Path(__file__).resolve().parents[3]


def _default_jobs_dir() -> Path:
    cwd_jobs = Path.cwd() / "jobs"
    if (cwd_jobs / "vars").is_dir():
        return cwd_jobs
    return _repo_root() / "jobs"


def _default_state_dir() -> Path:
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "jbcalling"


def _addr(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and "://" not in value:
        value = "http://" + value
    return value


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JB_", populate_by_name=True)

    env: Literal["dev", "prod"] = Field("dev", description="Environment: selects jobs/vars/<env>.hcl.")
    nomad_addr: str = Field("http://127.0.0.1:4646",
                            validation_alias=AliasChoices("NOMAD_ADDR", "nomad_addr"))
    nomad_token: str = Field("", validation_alias=AliasChoices("NOMAD_TOKEN", "nomad_token"))
    nomad_cacert: str = Field("", validation_alias=AliasChoices("NOMAD_CACERT", "nomad_cacert"))
    nomad_region: str = Field("", validation_alias=AliasChoices("NOMAD_REGION", "nomad_region"))
    nomad_client_cert: str = Field("", validation_alias=AliasChoices("NOMAD_CLIENT_CERT",
                                                                     "nomad_client_cert"))
    nomad_client_key: str = Field("", validation_alias=AliasChoices("NOMAD_CLIENT_KEY",
                                                                    "nomad_client_key"))
    consul_http_addr: str = Field("http://127.0.0.1:8500",
                                  validation_alias=AliasChoices("CONSUL_HTTP_ADDR", "consul_http_addr"))
    consul_http_token: str = Field("", validation_alias=AliasChoices("CONSUL_HTTP_TOKEN",
                                                                     "consul_http_token"))
    consul_cacert: str = Field("", validation_alias=AliasChoices("CONSUL_CACERT", "consul_cacert"))
    jobs_dir: Path = Field(default_factory=_default_jobs_dir,
                           description="Folder of <service>.nomad.hcl files and vars/.")
    release: str = Field(__version__, description="Release version stamped on every job.")
    app_root: str = Field("", description="The venv on the nodes that jobs start services from; "
                                          "empty: dev this jbctl's own venv, prod the release's "
                                          "(/opt/jbcalling/releases/<release>).")
    state_dir: Path = Field(default_factory=_default_state_dir,
                            description="Per-user state: the dev cluster's data, logs and tokens.")
    dev_port_offset: int = Field(0, ge=0, le=20000,
                                 description="Added to every dev-cluster port (run two side by side).")
    deploy_timeout_s: float = Field(600, gt=0, description="Longest a deploy or scale waits.")
    http_timeout_s: float = Field(10, gt=0, description="Timeout of one API call, seconds.")

    @field_validator("nomad_addr", "consul_http_addr")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return _addr(value)

    def resolved_app_root(self) -> str:
        if self.app_root:
            return self.app_root
        # Each release has its own venv on the nodes (Ansible installs it), so the job version
        # that names a release also names its code: a rollback brings back both.
        return sys.prefix if self.env == "dev" else f"{RELEASES_ROOT}/{self.release}"

    def redacted(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key in ("nomad_token", "consul_http_token"):
            if data[key]:
                data[key] = data[key][:4] + "…(redacted)"
        data["app_root"] = self.resolved_app_root()
        return data
