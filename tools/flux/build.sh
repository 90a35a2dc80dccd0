#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller, and tools/flux/kstatus,
# from the Go module proxy, for the tests that reconcile a Flux Kustomization
# (tests/harness/flux.py).
#
# Each lands in $SECRETSYNC_CACHE/bin/<name>-<version>/ (default ~/.cache/secretsync),
# outside the repository and keyed by version, so a warm machine skips the build. Each
# controller's folder also gets its CRDs, copied from the controller module's source
# tree in Go's module cache (config/crd/bases), so that they always match the binary
# and are never committed. Prints one `NAME=DIR` line per tool on stdout; progress
# goes to stderr.
#
# The pinned releases (v1.9.x) say `go 1.26.0`, so the installed Go builds them. Flux
# v1.10.x says `go 1.27.0` (export GOTOOLCHAIN=go1.27.3 for it), but the proxy refuses
# modules it needs: see the notes in each wrapper's go.mod.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SECRETSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretsync}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--mod=mod}"

# The version a wrapper module pins, read from its go.mod so there is one source of truth.
pinned() { # module-dir module-path
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

build() { # name module-dir out-dir binary package [module-with-crds]
  local name="$1" dir="$2" out="$3" bin="$4" pkg="$5" crd_module="${6:-}"
  if [ -x "$out/$bin" ]; then
    echo "flux-tools: $name is cached in $out" >&2
    return
  fi
  echo "flux-tools: building $name into $out (a cold build takes minutes)" >&2
  local start=$SECONDS tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$here/$dir" && go build -trimpath -ldflags "-s -w" -o "$tmp/$bin" "$pkg")
  if [ -n "$crd_module" ]; then
    local src
    src="$(cd "$here/$dir" && go list -m -f '{{.Dir}}' "$crd_module")/config/crd/bases"
    mkdir -p "$tmp/crds"
    cp "$src"/*.yaml "$tmp/crds/"
    # The module cache is read-only; the copies need not be.
    chmod -R u+w "$tmp/crds"
  fi
  rm -rf "$out" && mv "$tmp" "$out"
  echo "flux-tools: built $name in $((SECONDS - start))s" >&2
}

source_version="$(pinned source-controller github.com/fluxcd/source-controller)"
kustomize_version="$(pinned kustomize-controller github.com/fluxcd/kustomize-controller)"
# kstatus is this repository's own program: its key is the library's version plus a
# digest of its source, so that an edit rebuilds it.
kstatus_version="$(pinned kstatus sigs.k8s.io/cli-utils)-$(
  cat "$here/kstatus/main.go" "$here/kstatus/go.mod" "$here/kstatus/go.sum" | sha256sum | cut -c1-12
)"

source_dir="$cache/bin/flux-source-controller-$source_version"
kustomize_dir="$cache/bin/flux-kustomize-controller-$kustomize_version"
kstatus_dir="$cache/bin/kstatus-$kstatus_version"

build source-controller source-controller "$source_dir" source-controller \
  github.com/fluxcd/source-controller github.com/fluxcd/source-controller
build kustomize-controller kustomize-controller "$kustomize_dir" kustomize-controller \
  github.com/fluxcd/kustomize-controller github.com/fluxcd/kustomize-controller
build kstatus kstatus "$kstatus_dir" kstatus .

echo "FLUX_SOURCE_CONTROLLER=$source_dir"
echo "FLUX_KUSTOMIZE_CONTROLLER=$kustomize_dir"
echo "KSTATUS=$kstatus_dir"
