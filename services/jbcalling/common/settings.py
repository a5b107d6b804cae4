"""The base of every service's settings object.

Each service has exactly one settings class, read from ``JB_<SERVICE>_*`` environment
variables and validated at start; a bad value stops the service with a message that names the
variable and what it expects (see :func:`load`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

from jbcalling.common.version import __version__


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config`` with their own env prefix."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0: any free port).")
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$",
                           description="Log level: debug, info, warning or error.")
    version: str = Field(__version__, description="Release version reported by /health and /ready.")


class SpeechSettings(ServiceSettings):
    """Fields of the speech services (stt, mt, tts): where their models are."""

    models_dir: Path = Field(Path("/opt/jbcalling/volumes/models"),
                             description="The models folder (`jbctl models pull` fills it).")


UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024  # uvicorn's own default
S = TypeVar("S", bound=BaseSettings)
Svc = TypeVar("Svc", bound=ServiceSettings)


def load(cls: type[S]) -> S:
    """Build ``cls`` from the environment, or exit 2 naming each bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its message names the variables
                print(f"configuration error: {err['msg']}", file=sys.stderr)
                continue
            name = prefix + "_".join(str(p) for p in err["loc"]).upper()
            print(f"configuration error: {name}: {err['msg']} (got {err.get('input')!r})",
                  file=sys.stderr)
        print("fix the variables above (see docs/configuration.md) and start again",
              file=sys.stderr)
        raise SystemExit(2) from None


def serve(service: str, cls: type[Svc], create_app: Callable[[Svc], Any],
          ws_max_size: Callable[[Svc], int] | None = None, loop: str = "auto") -> None:
    """A service's console script: its settings from the environment, logs, uvicorn
    (``loop``: uvicorn's event loop choice)."""
    import uvicorn

    from jbcalling.common import logs

    settings = load(cls)
    logs.setup(service, settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False, loop=loop,
                ws_max_size=ws_max_size(settings) if ws_max_size else UVICORN_WS_MAX_SIZE)
