"""``jb-gateway``: run the media gateway with uvicorn."""

from jbcalling.common.settings import serve
from jbcalling.gateway.app import create_app
from jbcalling.gateway.settings import GatewaySettings


def main() -> None:
    serve("gateway", GatewaySettings, create_app)


if __name__ == "__main__":
    main()
