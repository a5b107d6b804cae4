"""Fixtures of the fuzz suite: one stack for the package (stack.py), checked after each module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from fuzz import stack as fuzz_stack
from fuzz.call import assert_call_works
from jbcalling.gateway import ice
from speech_fixtures import models_dir  # noqa: F401


# Package scope: the stack (in-process servers sharing this process's GIL, a gateway) ends with
# this process's last fuzz test; kept to the session's end, it starved the later tests' own
# aiortc peers (one frame received per track). xdist's loadfile hands a worker its files in
# collection order, so its fuzz files run one after another.
@pytest.fixture(scope="package")
def stack(models_dir: Path, redis_url: str,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[fuzz_stack.Stack]:
    with ExitStack() as exits:
        stack = fuzz_stack.start(exits, models_dir, redis_url, tmp_path_factory.mktemp("fuzz"))
        yield stack
        # Once, after every fuzz module this process ran (xdist may split the modules between
        # workers, each with its own stack): a real call through what the fuzzers attacked. A
        # failure shows as an error at the teardown of this process's last test.
        ice.use_host_addresses(["127.0.0.1"])
        try:
            assert_call_works(stack)
        except AssertionError as exc:
            raise AssertionError(f"after {', '.join(stack.fuzzed)} a real call failed: "
                                 f"{exc}") from exc
        finally:
            ice.use_host_addresses([])


@pytest.fixture(scope="module", autouse=True)
def healthy_after_module(stack: fuzz_stack.Stack, request: pytest.FixtureRequest) -> Iterator[None]:
    """After each fuzz module every service still answers /health (the real call is placed
    once, when the stack ends)."""
    stack.assert_healthy()
    stack.fuzzed.append(request.module.__name__)
    yield
    stack.assert_healthy()
