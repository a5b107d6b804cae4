"""Fixtures of the fuzz suite: one stack for the session (stack.py), checked after each module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from fuzz import stack as fuzz_stack
from jbcalling.gateway import ice
from speech_fixtures import models_dir  # noqa: F401


@pytest.fixture(scope="session")
def stack(models_dir: Path, redis_url: str,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[fuzz_stack.Stack]:
    with ExitStack() as exits:
        yield fuzz_stack.start(exits, models_dir, redis_url, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """This process's aiortc peers gather loopback candidates only."""
    ice.use_host_addresses(["127.0.0.1"])
    yield
    ice.use_host_addresses([])


@pytest.fixture(scope="module", autouse=True)
def healthy_after_module(stack: fuzz_stack.Stack) -> Iterator[None]:
    """After each fuzz module every service still answers /health (the call test, last, shows
    that a real call with captions still works)."""
    stack.assert_healthy()
    yield
    stack.assert_healthy()
