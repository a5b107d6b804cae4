"""``jb-mt``: run the translation service with uvicorn."""

import uvicorn

from jbcalling.common import logs
from jbcalling.common.settings import load
from jbcalling.mt.app import create_app
from jbcalling.mt.settings import MtSettings


def main() -> None:
    settings = load(MtSettings)
    logs.setup("mt", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
