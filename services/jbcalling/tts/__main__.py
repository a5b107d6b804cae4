"""``jb-tts``: run the speech synthesis service with uvicorn."""

import uvicorn

from jbcalling.common import logs
from jbcalling.common.settings import load
from jbcalling.tts.app import create_app
from jbcalling.tts.settings import TtsSettings


def main() -> None:
    settings = load(TtsSettings)
    logs.setup("tts", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
