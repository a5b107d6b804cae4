#!/usr/bin/env bash
# Puts real Nomad and Consul binaries in $JB_CACHE/bin, building them from the Go module
# proxy (wrapper modules tools/nomad and tools/consul) when no matching binary is found.
#
# Order of preference, per binary: $JB_NOMAD_BIN / $JB_CONSUL_BIN, then one on PATH of the
# pinned version, then the cached build $JB_CACHE/bin/<name>-<version>, then a fresh build.
# Prints the resolved paths as NAME=path lines on stdout; progress goes to stderr.
#
# `--previous` also builds the previous patch releases (tools/previous/: Nomad 1.6.0, Consul
# 1.16.0) that the production test's rolling upgrade starts from, cached the same way, and
# prints NOMAD_PREVIOUS= and CONSUL_PREVIOUS= lines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JB_CACHE="${JB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jbcalling}"
NOMAD_VERSION="1.6.1"
CONSUL_VERSION="1.16.1"
bindir="$JB_CACHE/bin"
mkdir -p "$bindir"

export GOMODCACHE="$JB_CACHE/go/mod" GOCACHE="$JB_CACHE/go/build"
# The checksum database is not reachable from the project's machines: go.sum (committed) pins
# every module instead.
export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf 'hashistack: %s\n' "$*" >&2; }

has_version() { # binary version -> 0 when `binary version` reports it
  # The whole output first: in a pipe, `head -1` could close it while the binary still writes,
  # and under pipefail its SIGPIPE made a good cached binary look wrong (a needless rebuild).
  local out
  out="$("$1" version 2>/dev/null)" || return 1
  grep -q "v\?$2" <<<"${out%%$'\n'*}"
}

resolve() { # name version override cgo tags [module dir]
  local name="$1" version="$2" override="$3" cgo="$4" tags="$5" module="${6:-$here/$1}"
  if [[ -n "$override" ]]; then
    [[ -x "$override" ]] || { log "$name: $override (from JB_${name^^}_BIN) is not an executable file"; exit 1; }
    echo "$override"; return
  fi
  local onpath=""
  # the real file: $bindir/<name> is itself a link that this script writes below
  [[ "$module" == "$here/$name" ]] && onpath="$(readlink -f "$(command -v "$name" || true)" || true)"
  if [[ -n "$onpath" ]] && has_version "$onpath" "$version"; then echo "$onpath"; return; fi
  local cached="$bindir/$name-$version"
  if [[ -x "$cached" ]] && has_version "$cached" "$version"; then echo "$cached"; return; fi
  command -v go >/dev/null || { log "$name: no binary and no Go toolchain to build one; install Go >= 1.24 or set JB_${name^^}_BIN"; exit 1; }
  log "$name $version: building from the Go module proxy (10-20 min cold on 2 cores; cached in $JB_CACHE)"
  local start=$SECONDS
  # (set -e does not reach into the $(...) this runs in: every failure exits explicitly)
  (cd "$module" && CGO_ENABLED="$cgo" go build -trimpath -tags "$tags" -ldflags "-s -w" \
      -o "$cached.tmp" "github.com/hashicorp/$name") >&2 \
    || { log "$name $version: the build failed (output above)"; exit 1; }
  mv "$cached.tmp" "$cached"
  log "$name $version: built in $((SECONDS - start)) s"
  echo "$cached"
}

nomad="$(resolve nomad "$NOMAD_VERSION" "${JB_NOMAD_BIN:-}" 1 "ui codegen_generated")" || exit 1
consul="$(resolve consul "$CONSUL_VERSION" "${JB_CONSUL_BIN:-}" 0 "")" || exit 1
ln -sf "$nomad" "$bindir/nomad"
ln -sf "$consul" "$bindir/consul"
echo "NOMAD=$nomad"
echo "CONSUL=$consul"

if [[ "${1:-}" == "--previous" ]]; then
  # never a binary on PATH or an override: these exist only for the upgrade test
  nomad_prev="$(resolve nomad 1.6.0 "" 1 "ui codegen_generated" "$here/previous/nomad")" || exit 1
  consul_prev="$(resolve consul 1.16.0 "" 0 "" "$here/previous/consul")" || exit 1
  echo "NOMAD_PREVIOUS=$nomad_prev"
  echo "CONSUL_PREVIOUS=$consul_prev"
fi
