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

# One process by default. JB_TEST_WORKERS=2 runs two pytest-xdist workers, a whole file each at
# a time, the production test first (tests/conftest.py): 21 minutes instead of about 27 on this
# 2-core machine, but the latency bounds (stt restart within 10 s, stable partials, the browser
# call) fail while the production test's installs load both cores.
.venv/bin/pytest -n "${JB_TEST_WORKERS:-0}" --dist loadfile --durations=25 "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
