"""The mt service's one settings object (``JB_MT_*``)."""


from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jbcalling.common.settings import SpeechSettings


class MtSettings(SpeechSettings):
    model_config = SettingsConfigDict(env_prefix="JB_MT_")

    port: int = Field(8082, ge=0, le=65535, description="TCP port to listen on (0: any free port).")
    pairs: dict[str, str] = Field({"en-vi": "opus-mt-en-vi", "vi-en": "opus-mt-vi-en"},
                                  description="Direction -> model folder (under models_dir), JSON.")
    translators: int = Field(1, ge=1, le=16, description="Translator workers per direction, each "
                             "with one thread (CTranslate2 inter_threads; intra_threads is 1).")
    max_batch: int = Field(16, ge=1, le=256, description="Most sentences in one batch call.")
    max_wait_ms: float = Field(5.0, ge=0, le=1000,
                               description="How long a batch waits for more sentences, ms.")
    max_queue: int = Field(512, ge=1, description="Sentences waiting at most; beyond: 503.")
    max_chars: int = Field(2000, ge=1, description="Longest text accepted, characters (else 413).")
    max_texts: int = Field(64, ge=1, description="Most texts per request (else 413).")
    beam_size: int = Field(2, ge=1, le=8, description="Beam size (1: greedy, fastest).")
    max_decoding_length: int = Field(256, ge=1, description="Most tokens per translated sentence.")
    min_decoding_length: int = Field(0, ge=0, description="Fewest tokens per sentence; only the "
                                     "benchmarks set it, to give a random stand-in a fixed length.")
    redis_url: str = Field("", description="Redis for the translation cache; empty: no cache.")
    redis_timeout_s: float = Field(0.5, gt=0, description="Timeout of each Redis call, seconds.")
    cache_ttl_s: int = Field(7 * 86400, ge=1, description="Lifetime of a cached translation.")
