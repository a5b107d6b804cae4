"""``jb-tts``: run the speech synthesis service with uvicorn."""

from jbcalling.common.settings import serve
from jbcalling.tts.app import create_app
from jbcalling.tts.settings import TtsSettings


def main() -> None:
    serve("tts", TtsSettings, create_app)


if __name__ == "__main__":
    main()
