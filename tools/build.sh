#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy:
# kube-apiserver, kube-controller-manager, kubectl, etcd and helm.
#
# Each tool lands in $SECRETSYNC_CACHE/bin/<tool>-<version>/ (default
# ~/.cache/secretsync), outside the repository and keyed by version, so a warm
# machine skips the build entirely. Go's own module and build caches keep
# their defaults (also outside the repository). Prints the bin directory of
# each tool, one `NAME=DIR` line per tool, on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SECRETSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretsync}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--mod=mod}"

# The version a wrapper module pins, read from its go.mod so there is one source of truth.
pinned() { # module-dir module-path
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

build() { # name module-dir out-dir ldflags "binaries" packages...
  local name="$1" dir="$2" out="$3" ldflags="$4" bins="$5"
  shift 5
  local missing=0 bin
  for bin in $bins; do [ -x "$out/$bin" ] || missing=1; done
  if [ "$missing" = 0 ]; then
    echo "tools: $name is cached in $out" >&2
    return
  fi
  echo "tools: building $name into $out (cold builds take minutes)" >&2
  local start=$SECONDS tmp="$out.partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # One package builds to a named file (etcd's package path ends in /v3).
  local target="$tmp/"
  [ "$#" = 1 ] && target="$tmp/$bins"
  (cd "$here/$dir" && go build -trimpath -ldflags "$ldflags" -o "$target" "$@")
  rm -rf "$out" && mv "$tmp" "$out"
  echo "tools: built $name in $((SECONDS - start))s" >&2
}

kube_version="$(pinned kube k8s.io/kubernetes)"          # e.g. v1.36.3
etcd_version="$(pinned etcd go.etcd.io/etcd/server/v3)"
helm_version="$(pinned helm helm.sh/helm/v3)"

major="${kube_version#v}"; minor="${major#*.}"; minor="${minor%%.*}"; major="${major%%.*}"
kube_ldflags="-s -w"
# Without these, /version says v0.0.0-master, which kubectl and Helm cannot
# parse and which skews feature gates.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

kube_dir="$cache/bin/kube-$kube_version"
etcd_dir="$cache/bin/etcd-$etcd_version"
helm_dir="$cache/bin/helm-$helm_version"

# The etcd program is the root package of its server module.
build etcd etcd "$etcd_dir" "-s -w" etcd go.etcd.io/etcd/server/v3
build helm helm "$helm_dir" "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
  helm helm.sh/helm/v3/cmd/helm
build kubernetes kube "$kube_dir" "$kube_ldflags" "kube-apiserver kube-controller-manager kubectl" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl

echo "KUBE_BIN=$kube_dir"
echo "ETCD_BIN=$etcd_dir"
echo "HELM_BIN=$helm_dir"
