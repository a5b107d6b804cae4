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
.venv/bin/jbctl status
echo "stop it with: .venv/bin/jbctl cluster down" >&2
# Last: the Prometheus links (when deployed), then the ingress's URL, the call page participants
# open (tests read that last line).
links="$(.venv/bin/jbctl status --json 2>/dev/null | .venv/bin/python -c '
import json, sys
doc = json.load(sys.stdin)
for url in doc["prometheus_urls"]:
    print("Prometheus: " + url)
print(*doc["public_urls"][:1])')"
url="$(tail -n 1 <<<"$links")"
grep '^Prometheus: ' <<<"$links" >&2 || true
echo "participants open: ${url:?no healthy ingress in Consul}/" >&2
