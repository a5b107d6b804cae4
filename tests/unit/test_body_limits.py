"""Request-size limits of the speech services, tried as an attacker would over a raw socket: a
huge declared Content-Length with a tiny body, and a chunked body that never ends, each answered
413 at once (the server must not wait for the body); the largest valid request still passes."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jbcalling.mt.app import create_app as create_mt
from jbcalling.mt.settings import MtSettings
from jbcalling.stt.app import create_app as create_stt
from jbcalling.stt.settings import SttSettings
from jbcalling.tts.app import create_app as create_tts
from jbcalling.tts.settings import TtsSettings

pytestmark = pytest.mark.unit
ANSWER_WITHIN_S = 5.0  # far below the time a server waiting for 1 GB would take


def services(models: Path) -> dict[str, tuple[Any, str]]:
    # no models in the folder: the services start without engines and still take requests
    return {"mt": (create_mt(MtSettings(models_dir=models)), "/v1/translate"),
            "tts": (create_tts(TtsSettings(models_dir=models)), "/v1/synthesize"),
            "stt": (create_stt(SttSettings(models_dir=models)), "/health")}


def status_and_body(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read one HTTP answer; fail if none comes within ANSWER_WITHIN_S."""
    sock.settimeout(ANSWER_WITHIN_S)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += sock.recv(65536)
    except TimeoutError:
        pytest.fail(f"no answer within {ANSWER_WITHIN_S} s: the server waits for the body")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.parametrize("name", ["mt", "tts", "stt"])
def test_a_huge_content_length_is_refused_before_the_body(name: str, serve: Any,
                                                          tmp_path: Path) -> None:
    app, path = services(tmp_path)[name]
    with serve(app) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 1000000000\r\n\r\n".encode() + b'{"lang": "en"')
        t0 = time.monotonic()
        status, body = status_and_body(sock)
        assert status == 413, body
        assert body["error"]["code"] == "too_large" and body["error"]["limit_bytes"] > 0
        assert time.monotonic() - t0 < ANSWER_WITHIN_S


@pytest.mark.parametrize("name", ["mt", "tts"])
def test_a_chunked_body_is_cut_at_the_limit(name: str, serve: Any, tmp_path: Path) -> None:
    app, path = services(tmp_path)[name]
    with serve(app) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"a" * 65536
        sent = 0
        try:  # never the closing chunk: an attacker's endless body
            while sent < 4 * 1024 * 1024:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what the test wants to read
        status, body = status_and_body(sock)
        assert status == 413, body
        assert body["error"]["code"] == "too_large"


def test_the_largest_valid_requests_pass_the_limit(serve: Any, tmp_path: Path) -> None:
    apps = services(tmp_path)
    # the worst case of JSON text: every character an escaped surrogate pair (12 bytes)
    mt_settings, tts_settings = MtSettings(models_dir=tmp_path), TtsSettings(models_dir=tmp_path)
    texts = ["\U0001f600" * mt_settings.max_chars] * mt_settings.max_texts
    with serve(apps["mt"][0]) as mt, serve(apps["tts"][0]) as tts:
        resp = httpx.post(mt.url + "/v1/translate", timeout=30, content=json.dumps(
            {"source": "en", "target": "vi", "texts": texts}), headers={
            "content-type": "application/json"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "model_missing"
        resp = httpx.post(tts.url + "/v1/synthesize", timeout=30, content=json.dumps(
            {"lang": "en", "text": "\U0001f600" * tts_settings.max_chars}), headers={
            "content-type": "application/json"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "model_missing"
        # one character more than a valid text: the service's own 413, after reading the body
        resp = httpx.post(tts.url + "/v1/synthesize", timeout=30, json={
            "lang": "en", "text": "a" * (tts_settings.max_chars + 1)})
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_long"
