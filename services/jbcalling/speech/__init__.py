"""Code the speech services (stt, mt, tts) share: model folders and the stand-in model builders.

The ``standin_*`` modules build random-weight models in the real formats of the production
models (docs/models.md) for tests, benchmarks and the dev cluster, where no real model of that
kind can be had. Their output is deterministic gibberish: they show the mechanics and the cost,
never the quality.
"""
