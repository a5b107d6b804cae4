"""`jbctl top`'s pure parts: Prometheus answers -> one document -> the drawn tables; and where
`jbctl status` says to click."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from jbcalling.cli import endpoints, prom_api, top_view

pytestmark = pytest.mark.unit


def _vec(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, value]}


ANSWERS = {
    "up": [_vec("2", job="signaling"), _vec("0", job="stt"), _vec("1", job="nomad")],
    "targets": [_vec("2", job="signaling"), _vec("1", job="stt"), _vec("1", job="nomad")],
    "cpu": [_vec("0.125", job="signaling")],
    "memory": [_vec("104857600", job="signaling")],
    "requests": [_vec("3.5", job="signaling"), _vec("0", job="stt")],
    "errors": [_vec("0.5", job="signaling")],
    "rooms": [_vec("2")], "sockets": [_vec("5")], "media_peers": [_vec("4")],
    "sizes": [_vec("1", participants="10+"), _vec("1", participants="2"),
              _vec("0", participants="1")],
    "p50": [_vec("0.7", kind="final", source="en", lang="vi"),
            _vec("NaN", kind="partial", source="vi", lang="vi")],
    "p95": [_vec("0.98", kind="final", source="en", lang="vi")],
}
HISTORY = [{"metric": {"kind": "final", "source": "en", "lang": "vi"},
            "values": [[1030.0, "0.5"], [1060.0, "1.0"], [1090.0, "NaN"], [1150.0, "0.25"]]}]
START = 1000.0


def test_assemble_groups_the_answers_per_service_room_and_pair() -> None:
    doc = prom_api.assemble(ANSWERS, HISTORY, ["redis", "signaling", "stt"], START)
    by = {s["service"]: s for s in doc["services"]}
    # every known service appears, in the given order, then the other scraped jobs
    assert [s["service"] for s in doc["services"]] == ["redis", "signaling", "stt", "nomad"]
    assert by["redis"] == {"service": "redis", "instances_up": 0, "targets": 0, "cpu_cores": None,
                           "memory_bytes": None, "requests_per_s": None, "errors_per_s": None}
    assert by["signaling"]["instances_up"] == 2 and by["signaling"]["cpu_cores"] == 0.125
    assert by["signaling"]["memory_bytes"] == 104857600 and by["signaling"]["errors_per_s"] == 0.5
    # requests but no 5xx series: no errors, not unknown
    assert by["stt"]["errors_per_s"] == 0.0 and by["stt"]["instances_up"] == 0
    # no gateway target answered: unknown, not zero
    assert doc["rooms"] == {"rooms": 2, "participants": 5, "media_rooms": None, "media_peers": 4,
                            "by_participants": {"2": 1, "10+": 1}}
    final, partial = doc["captions"]
    assert final == {"kind": "final", "source": "en", "lang": "vi", "p50_s": 0.7, "p95_s": 0.98,
                     "p95_history_s": [None, 0.5, 1.0, None, None, 0.25] + [None] * 14}
    assert partial["p50_s"] is None and partial["p95_history_s"] == [None] * 20


def test_sparkline_scales_to_the_maximum_and_shows_gaps() -> None:
    assert top_view.sparkline([0.5, 1.0, None, 0.0]) == "▅█ ▁"
    assert top_view.sparkline([]) == ""
    assert top_view.sparkline([0.0, None]) == "▁ "
    assert len(top_view.sparkline([1.0] * 50, width=20)) == 20


def test_units() -> None:
    assert top_view.size(104857600) == "100.0 MiB" and top_view.size(512) == "512 B"
    assert top_view.cores(0.125) == "12.5%" and top_view.rate(None) == "-"
    assert top_view.seconds(0.984) == "0.98 s"


def test_the_view_shows_every_service_room_and_pair() -> None:
    doc = {"prometheus": "http://p/prometheus/", "time": 0.0,
           **prom_api.assemble(ANSWERS, HISTORY, ["redis", "signaling", "stt"], START)}
    console = Console(width=160, record=True, color_system=None)
    console.print(top_view.view(doc, error="timed out"))
    text = console.export_text()
    for needle in ("redis", "not scraped", "signaling", "stt", "0/1", "nomad", "2/2",
                   "12.5%", "100.0 MiB", "3.5/s",
                   "rooms 2, participants 5 (signaling); media rooms -, peers 4",
                   "rooms of 2: 1, rooms of 10+: 1",
                   "0.70 s", "0.98 s", " ▅█  ▃", "last refresh failed: timed out"):
        assert needle in text, needle


def _inst(port: int, meta: dict[str, str], status: str = "passing") -> dict[str, Any]:
    return {"Node": {"Address": "10.0.0.9"},
            "Service": {"Address": "127.0.0.1", "Port": port, "Meta": meta},
            "Checks": [{"Status": "passing"}, {"Status": status}]}


def test_prometheus_links_through_the_ingress_and_in_dev_its_own_address() -> None:
    inst = _inst(9090, {"path_prefix": "/prometheus/"})
    assert endpoints.prometheus_url(inst) == "http://127.0.0.1:9090/prometheus/"
    assert endpoints.prometheus_url(_inst(9090, {})) == "http://127.0.0.1:9090/"
    public = ["https://call.example.org"]
    assert endpoints.prometheus_links(public, [inst], direct=False) == [
        "https://call.example.org/prometheus/"]
    assert endpoints.prometheus_links(public, [inst], direct=True) == [
        "https://call.example.org/prometheus/", "http://127.0.0.1:9090/prometheus/"]
    # not deployed, or no instance passing: no link
    assert endpoints.prometheus_links(public, [], direct=True) == []
    assert endpoints.prometheus_links(public, [_inst(9090, {}, "critical")], direct=True) == []


class _Consul:
    """Consul's /v1/health/service answers, scripted (the real ConsulApi's method)."""

    def __init__(self, services: dict[str, list[dict[str, Any]]]) -> None:
        self.services = services

    def service_health(self, name: str) -> list[dict[str, Any]]:
        return self.services.get(name, [])


class _Nomad:
    def __init__(self, items: dict[str, str] | None) -> None:
        self.items = items

    def variable(self, path: str) -> dict[str, Any] | None:
        assert path == "nomad/jobs/ingress"
        return None if self.items is None else {"Items": self.items}


def _connect(services: dict[str, list[dict[str, Any]]], items: dict[str, str] | None,
             via: str) -> prom_api.PrometheusApi:
    from jbcalling.cli.settings import CliSettings

    return prom_api.connect(_Consul(services), _Nomad(items), CliSettings(), via,  # type: ignore[arg-type]
                            "operator")


def test_connect_says_what_to_do_when_prometheus_cannot_be_reached() -> None:
    from jbcalling.cli.errors import JbctlError

    prom = [_inst(9090, {"path_prefix": "/prometheus/"})]
    ingress = [_inst(8080, {"public_port": "443", "scheme": "https"})]
    cases = [({}, None, "direct", "Prometheus is not deployed", "jbctl deploy prometheus"),
             ({"prometheus": [_inst(9090, {}, "critical")]}, None, "direct",
              "no instance passes its Consul checks", "jbctl logs prometheus"),
             ({"prometheus": prom}, None, "ingress", "no healthy ingress", "--via direct"),
             ({"prometheus": prom, "ingress": ingress}, {}, "ingress", "has no prometheus_password",
              "jbctl deploy ingress")]
    for services, items, via, message, hint in cases:
        with pytest.raises(JbctlError) as err:
            _connect(services, items, via)
        assert message in err.value.message and hint in err.value.hint, (err.value.message, via)
    direct = _connect({"prometheus": prom}, None, "direct")
    assert direct.base == "http://127.0.0.1:9090/prometheus/"
    assert "Authorization" not in direct.http.headers
    through = _connect({"prometheus": prom, "ingress": ingress}, {"prometheus_password": "pw"},
                       "ingress")
    assert through.base == "https://127.0.0.1/prometheus/"
    assert through.http.headers["Authorization"] == "Basic b3BlcmF0b3I6cHc="  # operator:pw
