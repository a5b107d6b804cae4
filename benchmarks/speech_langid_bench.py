"""Spoken-language identification (stt/langid.py): how long one identification of a 3 s
utterance takes, and the stand-in's feature measured on the test voices.

Timing: sherpa-onnx's SpokenLanguageIdentification with the Whisper stand-in at whisper tiny's
sizes (4 encoder layers of 384, 6 heads, 4 text layers, vocabulary 51865; MatMul weights int8 as
sherpa-onnx's ``tiny-*.int8.onnx``), and with the dev stand-in (``tiny``: 1 layer of 32) for
comparison; 1 ONNX thread. sherpa-onnx runs the encoder on the utterance plus 1000 frames (10 s)
of padding, as it does with the real model, so the cost follows the real encoder's shape; the
weights are random, so this is the cost of the computation, not of a particular checkpoint: the
encoder has the real tiny's convolutions, attention and feed-forward sizes; the decoder is
simpler (cross-attention only, one head) but runs a single step, and its 51865-token output
layer, the bulk of a real one-step cost, is the real size.

Feature: the stand-in's score (speech/standin_whisper_lid.py) per utterance, for 8 English
sentences in the Piper joe voice and 8 Vietnamese ones from espeak-ng, as raw 16 kHz audio and
after a round trip through aiortc's Opus encoder and decoder; computed by the stand-in's own
encoder (onnxruntime) on stt/features.py's Whisper log-mel (sherpa-onnx computes its features
itself, with kaldi-native-fbank: close, not identical), and the answer sherpa-onnx gives for each.

    .venv/bin/python benchmarks/speech_langid_bench.py [--runs 20]

Prints JSON and saves benchmarks/results/speech_langid.json.
"""

from __future__ import annotations

import argparse
import fractions
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from speech_common import CACHE, models_dir, save, stats

from jbcalling.speech import standin_whisper_lid
from jbcalling.speech.layout import DEV_LANGID, DEV_VOICES
from jbcalling.speech.modelfiles import is_standin
from jbcalling.stt.features import log_mel
from jbcalling.stt.langid import LanguageId

ENGLISH = ["Hello everyone, thanks for joining the call today.",
           "Can you share your screen so we can look at the numbers?",
           "I think the deadline for the project is next Friday.",
           "Let me know if the captions are working on your side.",
           "We should book a meeting room for the review.",
           "The weather was lovely over the weekend.",
           "Please send me the report before lunch.",
           "Good morning, how are you?"]
VIETNAMESE = ["Xin chào mọi người, cảm ơn đã tham gia cuộc gọi hôm nay.",
              "Bạn có thể chia sẻ màn hình để chúng ta xem các con số không?",
              "Tôi nghĩ hạn chót của dự án là thứ sáu tuần sau.",
              "Cho tôi biết phụ đề có hoạt động ở phía bạn không.",
              "Chúng ta nên đặt một phòng họp cho buổi đánh giá.",
              "Thời tiết cuối tuần rất đẹp.",
              "Vui lòng gửi cho tôi báo cáo trước bữa trưa.",
              "Chào buổi sáng, bạn khỏe không?"]
RATE = 16000


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    n = int(len(pcm) * RATE / rate)
    return np.interp(np.linspace(0, len(pcm) - 1, n), np.arange(len(pcm)),
                     pcm.astype(np.float32)).astype(np.float32) / 32768


def voices(models: Path) -> dict[str, list[np.ndarray]]:
    import wave

    from jbcalling.tts.engine import Voice

    joe = Voice("en", DEV_VOICES["en"], models / DEV_VOICES["en"], 1)
    en = [to_16k(np.frombuffer(b"".join(joe.sentences(t)), dtype="<i2"), joe.sample_rate)
          for t in ENGLISH]
    vi = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vi.wav"
        for text in VIETNAMESE:
            subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", "vi", "-w", str(out),
                            text], check=True, timeout=30)
            with wave.open(str(out), "rb") as w:
                vi.append(to_16k(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"),
                                 w.getframerate()))
    return {"en": en, "vi": vi}


def opus_round_trip(audio: np.ndarray) -> np.ndarray:
    """What a WebRTC hop does to the audio: aiortc's Opus encoder (48 kHz, voip) and decoder."""
    import av
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.jitterbuffer import JitterFrame

    enc, dec = OpusEncoder(), OpusDecoder()
    up = av.AudioResampler(format="s16", layout="mono", rate=48000)
    down = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, -len(pcm) % 320))
    out = []
    for i in range(0, len(pcm), 320):
        frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 320], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i, fractions.Fraction(1, RATE)
        for f48 in up.resample(frame):
            payloads, ts = enc.encode(f48)
            for p in payloads:
                for decoded in dec.decode(JitterFrame(data=p, timestamp=ts or 0)):
                    decoded.pts = None
                    out += [f.to_ndarray().reshape(-1) for f in down.resample(decoded)]
    return np.concatenate(out).astype(np.float32) / 32768


def scores(encoder: Path, clips: list[np.ndarray]) -> list[float]:
    """The stand-in's score: channel 0 of its cross v, from the encoder alone."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(encoder), providers=["CPUExecutionProvider"])
    out = []
    for audio in clips:
        mel = log_mel(audio)[None]
        cross_v = session.run(["n_layer_cross_v"], {"mel": mel})[0]
        out.append(round(float(cross_v[0, 0, 0, 0]), 3))
    return out


def timing(name: str, folder: Path, audio: np.ndarray, runs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    lid = LanguageId(name, folder)
    load = time.perf_counter() - t0
    lid.identify(audio)  # warm-up
    took = [lid.identify(audio).seconds for _ in range(runs)]
    features = []  # of which: sherpa-onnx's Whisper features (create_stream + accept_waveform)
    for _ in range(runs):
        t0 = time.perf_counter()
        lid._engine.create_stream().accept_waveform(RATE, audio)
        features.append(time.perf_counter() - t0)
    sizes = {p.name: p.stat().st_size for p in folder.glob("*.onnx")}
    return {"load_s": round(load, 2), "files_bytes": sizes, "identify": stats(took),
            "of_which_features": stats(features)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    models = models_dir()
    tiny_sized = CACHE / "whisper-lid-standin-whisper-tiny-int8"
    if not is_standin(tiny_sized):
        t0 = time.perf_counter()
        standin_whisper_lid.build(tiny_sized, "whisper-tiny", quantize=True)
        print(f"built {tiny_sized} in {time.perf_counter() - t0:.1f} s")
    clips = voices(models)
    # A 3 s utterance: two joe sentences back to back, cut at 3.0 s.
    three = np.concatenate(clips["en"][:2])[:3 * RATE]
    doc: dict[str, Any] = {"runs": args.runs, "utterance_s": len(three) / RATE, "threads": 1}
    doc["whisper_tiny_sized_int8"] = timing("whisper-tiny-sized", tiny_sized, three, args.runs)
    doc["dev_standin_tiny"] = timing(DEV_LANGID, models / DEV_LANGID, three, args.runs)
    lid = LanguageId(DEV_LANGID, models / DEV_LANGID)
    for label, prepare in (("raw", lambda a: a), ("opus", opus_round_trip)):
        audio = {lang: [prepare(a) for a in cs] for lang, cs in clips.items()}
        doc[f"feature_{label}"] = {
            lang: {"score": scores(models / DEV_LANGID / "encoder.onnx", cs),
                   "sherpa_onnx_says": [lid.identify(a).reported for a in cs]}
            for lang, cs in audio.items()}
    save("speech_langid", doc)


if __name__ == "__main__":
    main()
