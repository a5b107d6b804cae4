"""``jb-stt``: run the speech recognition service with uvicorn."""

import uvicorn

from jbcalling.common import logs
from jbcalling.common.settings import load
from jbcalling.stt.app import create_app
from jbcalling.stt.settings import SttSettings


def main() -> None:
    settings = load(SttSettings)
    logs.setup("stt", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False, ws_max_size=settings.max_frame_bytes + 1024)


if __name__ == "__main__":
    main()
