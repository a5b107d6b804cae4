"""The per-invocation context every command receives: settings, output, API clients."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

from jbcalling.cli.consul_api import ConsulApi
from jbcalling.cli.devcluster import DevCluster
from jbcalling.cli.nomad_api import NomadApi
from jbcalling.cli.output import Output
from jbcalling.cli.settings import CliSettings


@dataclass
class Ctx:
    settings: CliSettings
    out: Output = field(default_factory=Output)

    def __post_init__(self) -> None:
        # In dev, the local cluster is the default target: follow its port offset and use the
        # token `cluster up --acl` bootstrapped, unless the operator set them.
        if self.settings.env == "dev":
            dev = DevCluster(self.settings)
            if "NOMAD_ADDR" not in os.environ:
                self.settings.nomad_addr = dev.nomad_addr
            if "CONSUL_HTTP_ADDR" not in os.environ:
                self.settings.consul_http_addr = dev.consul_addr
            if not self.settings.nomad_token and self.settings.nomad_addr == dev.nomad_addr:
                self.settings.nomad_token = dev.token()

    @cached_property
    def nomad(self) -> NomadApi:
        return NomadApi(self.settings)

    @cached_property
    def consul(self) -> ConsulApi:
        return ConsulApi(self.settings)

    @cached_property
    def dev(self) -> DevCluster:
        return DevCluster(self.settings)
