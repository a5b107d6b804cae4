"""jbctl's one HTTP stack against an agent that wants mutual TLS (as Nomad does in production,
`verify_https_client`): the CA file and the client certificate both reach the handshake."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jbcalling.cli.errors import ClusterUnreachable
from jbcalling.cli.nomad_api import NomadApi
from jbcalling.cli.settings import CliSettings

pytestmark = pytest.mark.unit


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=test CA", "-keyout",
             str(d / "ca.key"), "-out", str(d / "ca.pem"))
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"))
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
                 "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))
    return d


class _Leader(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps("127.0.0.1:4647").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def agent(pki: Path) -> Iterator[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Leader)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _api(addr: str, pki: Path, client: bool) -> NomadApi:
    certs = {"nomad_client_cert": str(pki / "client.pem"),
             "nomad_client_key": str(pki / "client.key")} if client else {}
    return NomadApi(CliSettings(nomad_addr=addr, nomad_cacert=str(pki / "ca.pem"),
                                http_timeout_s=5, **certs))


def test_the_client_certificate_and_the_ca_file_reach_the_agent(agent: str, pki: Path,
                                                                 clean_environ: None) -> None:
    assert _api(agent, pki, client=True).leader() == "127.0.0.1:4647"


def test_without_the_client_certificate_the_agent_refuses_and_jbctl_says_so(
        agent: str, pki: Path, clean_environ: None) -> None:
    with pytest.raises(ClusterUnreachable) as err:
        _api(agent, pki, client=False).leader()
    assert f"cannot reach Nomad at {agent}" in err.value.message
