"""Builds each language's backend from the settings; a missing model becomes a named problem."""

from __future__ import annotations

import logging

from jbcalling.speech.modelfiles import MissingModel, is_standin
from jbcalling.stt.backend import Backend
from jbcalling.stt.settings import SttSettings

log = logging.getLogger("jbcalling.stt")


def load_backends(settings: SttSettings) -> tuple[dict[str, Backend], dict[str, str]]:
    from jbcalling.stt.offline import VadOfflineBackend
    from jbcalling.stt.streaming import StreamingBackend
    from jbcalling.stt.vad import VadFactory

    backends: dict[str, Backend] = {}
    problems: dict[str, str] = {}
    try:
        vad = VadFactory(settings)
    except MissingModel as exc:
        log.error("voice activity detector unavailable", extra={"reason": str(exc)})
        return {}, {lang: str(exc) for lang in settings.languages}
    for lang, spec in settings.languages.items():
        kind, _, model = spec.partition(":")
        folder = settings.models_dir / model
        standin = is_standin(folder)
        try:
            if kind == "streaming":
                backends[lang] = StreamingBackend(lang, model, folder, settings, vad)
            elif kind == "vad-whisper":
                from jbcalling.stt.whisper_ct2 import WhisperCt2

                decoder = WhisperCt2(model, folder, lang, settings.threads, settings.whisper_window_s,
                                     settings.whisper_compute_type)
                backends[lang] = VadOfflineBackend(lang, model, decoder, kind, settings, vad, standin)
            else:
                from jbcalling.stt.sherpa_offline import SherpaOffline

                backends[lang] = VadOfflineBackend(lang, model, SherpaOffline(model, folder, settings),
                                                   kind, settings, vad, standin)
        except MissingModel as exc:
            problems[lang] = str(exc)
            log.error("recognizer unavailable", extra={"lang": lang, "reason": str(exc)})
    return backends, problems
