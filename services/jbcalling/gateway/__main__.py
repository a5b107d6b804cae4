"""``jb-gateway``: run the media gateway with uvicorn."""

import uvicorn

from jbcalling.common import logs
from jbcalling.common.settings import load
from jbcalling.gateway.app import create_app
from jbcalling.gateway.settings import GatewaySettings


def main() -> None:
    settings = load(GatewaySettings)
    logs.setup("gateway", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
