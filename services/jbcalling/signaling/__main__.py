"""``jb-signaling``: run the signaling service with uvicorn."""

import uvicorn

from jbcalling.common import logs
from jbcalling.common.settings import load
from jbcalling.signaling.app import create_app
from jbcalling.signaling.settings import SignalingSettings


def main() -> None:
    settings = load(SignalingSettings)
    logs.setup("signaling", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False, ws_max_size=settings.ws_max_message_bytes)


if __name__ == "__main__":
    main()
