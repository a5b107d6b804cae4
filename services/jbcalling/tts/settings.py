"""The tts service's one settings object (``JB_TTS_*``)."""


from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jbcalling.common.settings import SpeechSettings


class TtsSettings(SpeechSettings):
    model_config = SettingsConfigDict(env_prefix="JB_TTS_")

    port: int = Field(8083, ge=0, le=65535, description="TCP port to listen on (0: any free port).")
    voices: dict[str, str] = Field({"en": "en_US-joe-medium", "vi": "vi_VN-vais1000-medium"},
                                   description="Language -> Piper voice (a folder under models_dir "
                                   "holding <voice>.onnx and <voice>.onnx.json), JSON.")
    workers: int = Field(1, ge=1, le=16, description="Sentences synthesized at once (threads).")
    onnx_threads: int = Field(1, ge=1, le=16, description="ONNX Runtime threads per synthesis.")
    max_pending: int = Field(8, ge=1, description="Requests in progress at most; beyond: 503.")
    max_chars: int = Field(1000, ge=1, description="Longest text accepted, characters (else 413).")
