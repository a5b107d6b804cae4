"""schemathesis against the OpenAPI schemas of signaling, mt, tts and the gateway's control API
(what someone inside the cluster network reaches), each served for real with its real engines
(stack.py): every generated request, valid and invalid, gets no 5xx and an
answer the schema documents (status, content type, headers, body), and nothing the schema
forbids is accepted. Not checked: that every schema-valid request is accepted (``ST202``), since
a schema cannot say "source differs from target" or the deployment's ``max_chars``."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from fuzz.stack import TEST_TIMEOUT_S, Stack, seeded

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(TEST_TIMEOUT_S)]
EXAMPLES = 50  # per service and mode: 2 x (4 + 1) x 50 = 500 requests


def fuzz(url: str, mode: GenerationMode, **fixed: object) -> int:
    """Run the generated requests; returns how many were sent."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    sent = []

    @seeded(EXAMPLES)
    @given(case=schema.as_strategy(generation_mode=mode, **fixed))  # type: ignore[arg-type]
    def run(case: schemathesis.Case) -> None:
        sent.append(case.call_and_validate(base_url=url, timeout=30,
                                           excluded_checks=[positive_data_acceptance]))

    run()
    return len(sent)


@pytest.mark.parametrize("service", ["mt", "tts", "signaling", "gateway"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests(stack: Stack, service: str, mode: GenerationMode) -> None:
    assert fuzz(stack.services[service], mode) >= EXAMPLES // 2


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_in_a_live_room(stack: Stack, mode: GenerationMode) -> None:
    """The same with a real room id and a participant's token, so that requests get past the
    room and token checks."""
    room = httpx.post(stack.signaling + "/api/rooms", timeout=10).json()["room_id"]
    token = httpx.post(f"{stack.signaling}/api/rooms/{room}/join", timeout=10, json={
        "name": "Fuzz", "speak": "en", "captions": "vi"}).json()["token"]
    sent = fuzz(stack.signaling, mode, path_parameters={"room_id": room},
                headers={"Authorization": f"Bearer {token}"})
    assert sent >= EXAMPLES // 2
