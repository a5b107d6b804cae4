"""``jb-stt``: run the speech recognition service with uvicorn."""

from jbcalling.common.settings import serve
from jbcalling.stt.app import create_app
from jbcalling.stt.settings import SttSettings


def main() -> None:
    serve("stt", SttSettings, create_app, lambda s: s.max_frame_bytes + 1024)


if __name__ == "__main__":
    main()
