"""``jb-mt``: run the translation service with uvicorn."""

from jbcalling.common.settings import serve
from jbcalling.mt.app import create_app
from jbcalling.mt.settings import MtSettings


def main() -> None:
    serve("mt", MtSettings, create_app)


if __name__ == "__main__":
    main()
