#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy:
# kube-apiserver, kube-controller-manager, kubectl, etcd and helm; with --node
# also what the one-node environment runs (tests/harness/node.py): kubelet and
# kube-scheduler (same wrapper module and release as the control plane),
# containerd with its runc shim and ctr, and the Pod sandbox program (tools/pause).
#
#   tools/build.sh [--node]
#
# Each tool lands in $SECRETSYNC_CACHE/bin/<tool>-<version>/ (default
# ~/.cache/secretsync), outside the repository and keyed by version, so a warm
# machine skips the build entirely. Go's own module and build caches keep
# their defaults (also outside the repository). Prints the bin directory of
# each tool, one `NAME=DIR` line per tool, on stdout; progress goes to stderr.
set -euo pipefail

node=0
case "${1:-}" in
  "") ;;
  --node) node=1 ;;
  *) echo "usage: tools/build.sh [--node]" >&2; exit 2 ;;
esac

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

[ "$node" = 1 ] || exit 0

# The node's programs go into folders of their own, so that adding them never
# invalidates (and rebuilds) the control plane's cached folder above.
containerd_version="$(pinned containerd github.com/containerd/containerd/v2)"
kube_node_dir="$cache/bin/kube-node-$kube_version"
containerd_dir="$cache/bin/containerd-$containerd_version"
build kube-node kube "$kube_node_dir" "$kube_ldflags" "kubelet kube-scheduler" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler
# containerd 2.x rather than Debian's 1.6: kubelet 1.36 warns that 1.37 drops 1.6.
# Without cgo the btrfs snapshotter is left out (its build tag needs cgo); the
# overlayfs snapshotter this environment uses is pure Go.
ctrd=github.com/containerd/containerd/v2
build containerd containerd "$containerd_dir" \
  "-s -w -X $ctrd/version.Version=$containerd_version -X $ctrd/version.Revision=proxy-$containerd_version" \
  "containerd containerd-shim-runc-v2 ctr" \
  "$ctrd/cmd/containerd" "$ctrd/cmd/containerd-shim-runc-v2" "$ctrd/cmd/ctr"

# The sandbox program is our own source: keyed by its content rather than a release.
pause_dir="$cache/bin/pause-$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha256sum | cut -c1-12)"
build pause pause "$pause_dir" "-s -w" pause secretsync.io/tools/pause

echo "KUBE_NODE_BIN=$kube_node_dir"
echo "CONTAINERD_BIN=$containerd_dir"
echo "PAUSE_BIN=$pause_dir"
