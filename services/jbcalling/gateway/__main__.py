"""``jb-gateway``: run the media gateway with uvicorn, on uvloop.

uvloop, not asyncio's own loop: every forwarded packet is a datagram received and sent through
the loop, and the gateway spent about a fifth less CPU per datagram on uvloop (docs/runbook.md,
"Gateway forwarding"; ``benchmarks/gateway_forwarding.py --compare-uvloop``).
"""

from jbcalling.common.settings import serve
from jbcalling.gateway.app import create_app
from jbcalling.gateway.settings import GatewaySettings


def main() -> None:
    serve("gateway", GatewaySettings, create_app, loop="uvloop")


if __name__ == "__main__":
    main()
