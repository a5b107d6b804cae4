#!/usr/bin/env bash
# Runs the whole stack locally: set-up, a real Nomad + Consul dev cluster, every service
# deployed through jbctl (the ingress in front of signaling), then the URLs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
eval "$(bash tools/setup.sh)"
export PATH="$(dirname "$JB_NOMAD_BIN"):$(dirname "$JB_CONSUL_BIN"):$PATH"
.venv/bin/jbctl cluster up
.venv/bin/jbctl deploy
echo "stop it with: .venv/bin/jbctl cluster down" >&2
# Last: the status, which ends with where to click: the Nomad, Consul and Prometheus links, then
# the call page participants open (tests read that last line). No ingress is a failure here.
.venv/bin/jbctl status
.venv/bin/jbctl status --json 2>/dev/null | .venv/bin/python -c '
import json, sys
if not json.load(sys.stdin)["public_urls"]:
    sys.exit("no healthy ingress in Consul: no page for participants (see jbctl status)")'
