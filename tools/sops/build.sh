#!/usr/bin/env bash
# Builds the sops CLI from the Go module proxy, for the tests that encrypt every SOPS
# fixture with the real program (tests/harness/sopscli.py).
#
# It lands in $SECRETSYNC_CACHE/bin/sops-<version>/ (default ~/.cache/secretsync),
# outside the repository and keyed by version, so a warm machine skips the build (a cold
# one takes about 1.5 minutes on two cores). Prints `SOPS_BIN=DIR` on stdout; progress
# goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SECRETSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretsync}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--mod=mod}"

version="$(cd "$here" && go list -m -f '{{.Version}}' github.com/getsops/sops/v3)"
out="$cache/bin/sops-$version"
if [ -x "$out/sops" ]; then
  echo "sops-tools: sops is cached in $out" >&2
else
  echo "sops-tools: building sops $version into $out (a cold build takes minutes)" >&2
  start=$SECONDS
  tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # sops prints its version from this variable; without it, "sops version" says 0.0.0.
  (cd "$here" && go build -trimpath \
    -ldflags "-s -w -X github.com/getsops/sops/v3/version.Version=${version#v}" \
    -o "$tmp/sops" github.com/getsops/sops/v3/cmd/sops)
  rm -rf "$out" && mv "$tmp" "$out"
  echo "sops-tools: built sops in $((SECONDS - start))s" >&2
fi
echo "SOPS_BIN=$out"
