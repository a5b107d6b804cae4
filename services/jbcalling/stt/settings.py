"""The stt service's one settings object (``JB_STT_*``)."""


from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from jbcalling.common.settings import SpeechSettings

BACKENDS = ("streaming", "vad-whisper", "vad-sherpa")


class SttSettings(SpeechSettings):
    model_config = SettingsConfigDict(env_prefix="JB_STT_")

    port: int = Field(8081, ge=0, le=65535, description="TCP port to listen on (0: any free port).")
    languages: dict[str, str] = Field(
        {"en": "streaming:sherpa-onnx-streaming-zipformer-en-2023-06-26",
         "vi": "vad-sherpa:sherpa-onnx-zipformer-vi-30M-int8-2026-02-09"},
        description="Language -> '<backend>:<model folder>', JSON. Backends: streaming (sherpa-onnx "
                    "OnlineRecognizer), vad-sherpa (VAD + sherpa-onnx OfflineRecognizer), "
                    "vad-whisper (VAD + Whisper in CTranslate2 format).")
    langid_model: str = Field("", description="Folder (under models_dir) of a multilingual "
                              "Whisper for spoken-language identification (sherpa-onnx export, "
                              "e.g. sherpa-onnx-whisper-tiny). Set: stt also serves lang=auto, "
                              "each utterance identified and decoded by that language's "
                              "recognizer (vi and en must be on VAD backends). Empty: no auto.")
    langid_default: str = Field("en", pattern="^(vi|en)$", description="lang=auto: the language "
                                "of a stream's first utterance when the model names neither.")
    vad_model: str = Field("silero-vad", description="Folder of silero_vad.onnx under models_dir.")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability threshold.")
    vad_min_silence_ms: int = Field(300, ge=50, le=5000, description="Silence that ends an "
                                    "utterance (the main endpoint latency), ms.")
    vad_min_speech_ms: int = Field(250, ge=50, le=5000, description="Shortest speech kept, ms.")
    max_utterance_s: float = Field(15.0, ge=2, le=30, description="Longest utterance; longer "
                                   "speech is cut into finals this long.")
    partial_interval_ms: int = Field(600, ge=0, description="VAD backends: re-decode the open "
                                     "utterance for a partial this often (0: no partials), ms.")
    partial_first_ms: int = Field(100, ge=0, description="VAD backends: the first partial of an "
                                  "utterance this long after the VAD detected speech, ms (at most "
                                  "partial_interval_ms).")
    stable_partial_quiet_ms: int = Field(120, ge=0, le=2000, description="VAD backends: after "
                                         "this much quiet at the end of speech, decode a stable "
                                         "partial that the final reuses (0: off), ms.")
    endpoint_trailing_silence_s: float = Field(0.8, gt=0, description="Streaming backend: the "
                                               "recognizer's own endpoint after speech, seconds.")
    decoding_method: str = Field("greedy_search", pattern="^(greedy_search|modified_beam_search)$",
                                 description="Transducer search; hotwords need modified_beam_search.")
    hotwords_file: str = Field("", description="Hotwords file for transducer backends (one phrase "
                               "per line, sherpa-onnx format); empty: none.")
    hotwords_score: float = Field(1.5, ge=0, description="Bonus per hotword token.")
    whisper_window_s: int = Field(10, ge=5, le=30, description="Whisper input window, seconds; "
                                  "30 is Whisper's own; 10 is about 3x faster (its repetitions "
                                  "are trimmed, docs/speech.md).")
    whisper_compute_type: str = Field("default", pattern="^(default|int8|int8_float32|float32)$",
                                      description="CTranslate2 compute type of Whisper; int8 is "
                                      "10-20 % faster but misheard the human test recording.")
    threads: int = Field(2, ge=1, le=16, description="Threads per recognizer.")
    max_sessions: int = Field(16, ge=1, description="Open streams at most; beyond: closed with 1013.")
    capacity_streams: int = Field(0, ge=0, description="Streams this instance recognizes in "
                                  "real time; beyond: a new stream is refused (1013, busy). 0: "
                                  "measured at start-up on this hardware (capacity_probe_s of "
                                  "audio per language), at most max_sessions.")
    capacity_budget: float = Field(1.2, gt=0, le=16, description="Worker seconds per second the "
                                   "measured streams may take together (1: one core busy with "
                                   "every speaker talking non-stop; speakers pause, so a little "
                                   "above 1).")
    capacity_probe_s: float = Field(3.0, ge=1, le=10, description="Audio decoded per language "
                                    "by the start-up measurement, seconds; it also stops after "
                                    "this long in wall time (a slow machine measures on less).")
    capacity_window_s: float = Field(5.0, ge=1, le=60, description="The measured capacity then "
                                     "follows the real-time factor observed over this many "
                                     "seconds of serving: down at once (the newest streams beyond "
                                     "it are closed with busy), up one stream after 3x this long "
                                     "without a change, seconds.")
    capacity_lag_s: float = Field(1.5, gt=0, description="Audio received and not yet recognized, "
                                  "on the most behind stream, above which for 3 s the instance "
                                  "counts as over capacity (one stream fewer than are open), "
                                  "seconds.")
    max_frame_bytes: int = Field(64000, ge=320, description="Largest audio frame (2 s), bytes.")
    max_backlog_s: float = Field(3.0, gt=0, description="Audio waiting for recognition at most, "
                                 "per stream, seconds; beyond: what waits is dropped (a skipped "
                                 "message), the open utterance discarded, and recognition "
                                 "resumes at the next pause.")
    max_session_s: float = Field(3600.0, ge=1, description="Audio one stream takes at most, "
                                 "seconds; then its last final and a close (1000, max_length); "
                                 "the gateway hands over to a new stream before, between "
                                 "utterances.")
    idle_timeout_s: float = Field(60.0, gt=0, description="A stream that sends no audio frame for "
                                  "this long is closed (1000, idle), seconds.")

    @field_validator("languages")
    @classmethod
    def _backends_known(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, spec in value.items():
            backend, _, model = spec.partition(":")
            if backend not in BACKENDS or not model:
                raise ValueError(f"{lang}: {spec!r} is not '<backend>:<model>' with a backend "
                                 f"among {', '.join(BACKENDS)}")
        return value
