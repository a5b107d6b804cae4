"""``jb-signaling``: run the signaling service with uvicorn."""

from jbcalling.common.settings import serve
from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings


def main() -> None:
    serve("signaling", SignalingSettings, create_app, lambda s: s.ws_max_message_bytes)


if __name__ == "__main__":
    main()
