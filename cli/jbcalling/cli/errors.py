"""What can go wrong in jbctl, and the exit code each failure maps to.

    JbctlError                 exit 1   base: the operation failed
    ├── UsageError             exit 2   the command line is wrong (unknown service, bad value)
    ├── ClusterUnreachable     exit 3   Nomad or Consul does not answer, or refuses our token
    ├── RenderError            exit 1   a job file or var file does not render (nothing submitted)
    ├── OwnershipError         exit 1   a job of that name exists and jbctl did not create it
    ├── DeploymentFailed       exit 1   Nomad failed or reverted the deployment, or it is unhealthy
    └── DevClusterError        exit 1   the local dev cluster cannot start or stop

Every error carries a ``hint``: the one thing the operator should do next. Retrying only helps
for ClusterUnreachable (the cluster may come back); the others are permanent until the input or
the cluster changes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_PLAN_ERROR = 255  # `jbctl plan` only, as nomad-pack does


class JbctlError(Exception):
    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "", details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []


class UsageError(JbctlError):
    exit_code = EXIT_USAGE


class ClusterUnreachable(JbctlError):
    exit_code = EXIT_UNREACHABLE


class RenderError(JbctlError):
    pass


class OwnershipError(JbctlError):
    pass


class DeploymentFailed(JbctlError):
    pass


class DevClusterError(JbctlError):
    pass


class ServiceRefused(JbctlError):
    """A jbcalling service answered an error (``{"error": {"code", "message"}}``)."""
