#!/usr/bin/env bash
# The test command: sets up a fresh machine (tools/setup.sh), lints, then runs pytest.
# Extra arguments go to pytest (e.g. `bash tools/test.sh -m unit`).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
env_lines="$(bash tools/setup.sh)" || { echo "test: set-up failed" >&2; exit 1; }
eval "$env_lines"
export PATH="$(dirname "$JB_NOMAD_BIN"):$(dirname "$JB_CONSUL_BIN"):$PATH"
# The previous Nomad and Consul patch releases, which the production test upgrades from (cached
# beside the others; about 5 minutes more on a fresh machine).
bash tools/hashistack.sh --previous >/dev/null || { echo "test: building the previous Nomad/Consul failed" >&2; exit 1; }

.venv/bin/ruff check services cli tests benchmarks || exit 1
.venv/bin/mypy cli services || exit 1

# Two phases on this 2-core machine, about 20 minutes instead of 27 in one process:
#   1. two pytest-xdist workers, a whole file each at a time: the production test (half of the
#      suite's time, tests/conftest.py starts it first) on one, every other file beside it;
#   2. one process: the tests that bound a latency (marker `latency`, set by path in
#      tests/conftest.py), which failed beside the production test's installs.
# Given arguments (e.g. `bash tools/test.sh -m unit`), one pytest run with them instead, in
# JB_TEST_WORKERS processes (default one).
pytest_run() {
  .venv/bin/pytest --durations=25 "$@"
  local rc=$?
  if [[ $rc -eq 5 ]]; then
    echo "test: pytest collected no tests: that is a failure" >&2
    return 1
  fi
  return $rc
}

if [[ $# -gt 0 ]]; then
  pytest_run -n "${JB_TEST_WORKERS:-0}" --dist loadfile "$@"
  exit $?
fi
pytest_run -n 2 --dist loadfile -m "not latency"
parallel=$?
echo "test: phase 2, the latency-bound tests, one process" >&2
pytest_run -n 0 -m latency
serial=$?
if [[ $parallel -ne 0 || $serial -ne 0 ]]; then
  echo "test: failed (parallel phase: rc=$parallel, latency phase: rc=$serial)" >&2
  exit 1
fi
