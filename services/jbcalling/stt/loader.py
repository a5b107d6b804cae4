"""Builds each language's backend from the settings; a missing model becomes a named problem."""

from __future__ import annotations

import logging
from typing import Any

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
            else:
                backends[lang] = VadOfflineBackend(lang, model, _decoder(settings, lang), kind,
                                                   settings, vad, standin)
        except MissingModel as exc:
            problems[lang] = str(exc)
            log.error("recognizer unavailable", extra={"lang": lang, "reason": str(exc)})
    if settings.langid_model:
        try:
            backends["auto"] = _detecting(settings, vad)
        except (MissingModel, ValueError) as exc:
            problems["auto"] = str(exc)
            log.error("language detection unavailable", extra={"reason": str(exc)})
    return backends, problems


def _decoder(settings: SttSettings, lang: str) -> Any:
    """The offline recognizer of ``lang``'s VAD backend (vad-whisper or vad-sherpa)."""
    kind, _, model = settings.languages[lang].partition(":")
    folder = settings.models_dir / model
    if kind == "vad-whisper":
        from jbcalling.stt.whisper_ct2 import WhisperCt2

        return WhisperCt2(model, folder, lang, settings.threads, settings.whisper_window_s,
                          settings.whisper_compute_type)
    if kind == "vad-sherpa":
        from jbcalling.stt.sherpa_offline import SherpaOffline

        return SherpaOffline(model, folder, settings)
    raise ValueError(f"lang=auto needs {lang} on a VAD backend (vad-whisper or vad-sherpa), "
                     f"not {kind}: set JB_STT_LANGUAGES accordingly or leave JB_STT_LANGID_MODEL "
                     "empty")


def _detecting(settings: SttSettings, vad: Any) -> Backend:
    """The ``auto`` backend (stt/detecting.py), with recognizers of its own."""
    from jbcalling.stt.detecting import DetectingBackend
    from jbcalling.stt.langid import LanguageId, NotALanguageIdModel

    missing = [lang for lang in ("vi", "en") if lang not in settings.languages]
    if missing:
        raise ValueError(f"lang=auto needs both vi and en configured; missing: {', '.join(missing)}")
    folder = settings.models_dir / settings.langid_model
    try:
        langid = LanguageId(settings.langid_model, folder, settings.langid_default)
    except NotALanguageIdModel as exc:
        raise ValueError(str(exc)) from exc
    decoders = {lang: _decoder(settings, lang) for lang in ("vi", "en")}
    return DetectingBackend(decoders, langid, settings, vad, langid.standin)
