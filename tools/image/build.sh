#!/usr/bin/env bash
# `make image`: builds the operator's image from the unchanged Dockerfile with buildah
# (no Docker daemon), checks it, and exports it as a docker-archive that the local
# node's containerd imports (tests/harness/node.py).
#
# Everything it keeps lives outside the repository, under $SECRETSYNC_CACHE (default
# ~/.cache/secretsync): buildah's storage in buildah/, the stand-in base's root
# filesystem and the exported archive in image/. Prints `IMAGE=<ref>` and
# `ARCHIVE=<file>` on stdout; progress and the checks' results go to stderr.
#
# The Dockerfile's base (python:3.11-slim-bookworm) comes from a registry this
# machine cannot reach. When it cannot be pulled, a stand-in is made here: a
# debootstrap'd Debian bookworm with python3, venv and pip, committed under the
# base's own name so that the Dockerfile builds unchanged. The build says so loudly.
# Any failure stops the build: it never edits the Dockerfile nor skips a check.
#
#   tools/image/build.sh          (needs root, buildah and debootstrap:
#                                  tools/node/install-debs.sh installs them)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${SECRETSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretsync}"
say() { echo "image: $*" >&2; }
die() { echo "image: ERROR: $*" >&2; exit 1; }

for tool in buildah debootstrap python3; do
  command -v "$tool" >/dev/null || die "$tool is missing; run: bash tools/node/install-debs.sh"
done
[ "$(id -u)" = 0 ] || die "buildah's overlay storage and debootstrap need root"

# One storage for every build on this machine, so layers are reused between builds.
# Overlay is the fast driver; `SECRETSYNC_BUILDAH_DRIVER=vfs` is the slow, always-working
# fallback (a storage made with one driver cannot be opened with the other, hence its
# own folder).
driver="${SECRETSYNC_BUILDAH_DRIVER:-overlay}"
store="$cache/buildah/$driver"
bah=(buildah --root "$store/storage" --runroot "$store/run" --storage-driver "$driver")
# buildah's blob-info cache goes to /var/lib/containers/cache whatever --root says, for
# root; when this build is what makes that folder, it removes it again at exit.
blobcache_made=0
[ -e /var/lib/containers ] || blobcache_made=1
cleanup_host() { if [ "$blobcache_made" = 1 ]; then rm -rf /var/lib/containers; fi; }
trap cleanup_host EXIT
# buildah's network layer creates /etc/cni/net.d (and a cni.lock in it) on every start,
# whether a RUN step uses CNI or not; this keeps that under the cache instead.
mkdir -p "$store"
printf '[network]\nnetwork_config_dir = "%s"\n' "$store/cni" >"$store/containers.conf"
export CONTAINERS_CONF="$store/containers.conf"
mkdir -p "$cache/image"

version="$(cd "$repo" && python3 -c \
  'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
# `localhost/` is a registry name that containerd and kubelet never try to pull from
# by accident and keep as written (a bare name would become docker.io/library/...).
image="localhost/secretsync:$version"
archive="$cache/image/secretsync-$version.tar"
base="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo/Dockerfile")"
[ -n "$base" ] || die "the Dockerfile has no 'ARG PYTHON_IMAGE=<base>' line to read the base from"
start=$SECONDS

# --- the base: the real one if it can be pulled, else the stand-in ---------------------
# A stand-in already in storage is used without trying the registry again; to try, remove
# it: buildah --root <cache>/buildah/overlay/storage rmi python:3.11-slim-bookworm

# Bump when the recipe below changes: the cached stand-in is keyed by it.
standin_key="bookworm-python3-v2"
standin_label="io.secretsync.stand-in"

base_label() { # prints the stand-in label of the local base ("" for a real base)
  "${bah[@]}" inspect --type image --format "{{index .ImageAnnotations \"$standin_label\"}}" \
    "$base" 2>/dev/null || true
}

debian_mirror() {
  # The Debian archive this machine's apt already uses (no host is named here).
  apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 'Codename: bookworm' \
    2>/dev/null | grep -v -- '-security' | head -n1
}

make_standin() {
  local rootfs="$cache/image/standin-$standin_key" tarball="$cache/image/standin-$standin_key.tar"
  if [ ! -s "$tarball" ]; then
    local mirror
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian bookworm archive in apt's sources; cannot debootstrap"
    say "debootstrap bookworm with python3, python3-venv and pip (about 2 minutes, once)"
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    # What the official slim image also carries: CA certificates, netbase, tzdata.
    debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,python3-wheel-whl,ca-certificates,netbase,tzdata \
      bookworm "$rootfs" "$mirror" >"$cache/image/debootstrap.log" 2>&1 \
      || die "debootstrap failed; its log: $cache/image/debootstrap.log"
    # Make it behave like the official image where the Dockerfile relies on it:
    # - pip, setuptools and wheel installed by pip (with RECORD files) rather than by
    #   dpkg, so that `pip uninstall` in the final stage can remove them; they come
    #   from the wheels Debian ships for venv, so nothing is downloaded;
    # - no EXTERNALLY-MANAGED marker (the official Python is not the distribution's);
    # - a `python` command.
    # A clean environment: this machine's PIP_* variables name paths the chroot lacks.
    env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      chroot "$rootfs" /bin/sh -euc '
      python3 -m pip install --quiet --root-user-action=ignore --break-system-packages \
        --no-index --ignore-installed --find-links /usr/share/python-wheels pip setuptools wheel
      apt="apt-get -y -qq -o Dpkg::Use-Pty=0"
      $apt purge python3-pip python3-setuptools python3-wheel >/dev/null
      $apt autoremove --purge >/dev/null
      if dpkg -s python3-pip >/dev/null 2>&1; then echo "python3-pip is still installed" >&2; exit 1; fi
      rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
      ln -sf /usr/bin/python3 /usr/local/bin/python
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.cache
    ' || die "finishing the stand-in root filesystem in $rootfs failed"
    tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  local ctr
  ctr="$("${bah[@]}" from --quiet scratch)"
  "${bah[@]}" add --quiet "$ctr" "$tarball" / >/dev/null
  "${bah[@]}" config --annotation "$standin_label=$standin_key" \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  "${bah[@]}" commit --quiet --rm "$ctr" "$base" >/dev/null
}

label="$(base_label)"
if "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1 && [ -z "$label" ]; then
  say "base $base: the real image, found in buildah's storage"
elif [ -z "$label" ] && "${bah[@]}" pull --quiet "$base" >/dev/null 2>"$cache/image/pull.log"; then
  say "base $base: pulled"
else
  if [ -z "$label" ]; then
    say "base $base cannot be pulled here ($(tail -n1 "$cache/image/pull.log"))"
  fi
  if [ "$label" != "$standin_key" ]; then
    make_standin
  fi
  say "************************************************************************"
  say "USING A STAND-IN BASE for $base: Debian bookworm's python3 ($standin_key),"
  say "made locally with debootstrap because the real base cannot be pulled."
  say "It differs from the official image (Python in /usr/bin, dist-packages, larger)."
  say "************************************************************************"
fi

# --- the build -----------------------------------------------------------------------------

# RUN steps reach the package index as this machine does: with the host's network and an
# effective pip configuration (config files and PIP_* variables folded into one file) and
# CA bundle mounted in, read-only. They are mounted for RUN steps only: no layer keeps them.
pipconf="$(mktemp)"
trap 'rm -f "$pipconf"; cleanup_host' EXIT
python3 - "$pipconf" <<'PY'
import ast, os, re, subprocess, sys

keep = {"index-url", "extra-index-url", "trusted-host", "cert", "client-cert", "timeout",
        "default-timeout", "proxy", "retries"}
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                     text=True, check=True).stdout
values: dict[str, str] = {}
for line in out.splitlines():
    m = re.match(r"^(?P<scope>[^.]*)\.(?P<key>[^=]+)=(?P<value>.*)$", line)
    if m and m["key"] in keep:
        key = "timeout" if m["key"] == "default-timeout" else m["key"]
        # Environment variables (":env:") outrank configuration files.
        if m["scope"] == ":env:" or key not in values:
            values[key] = ast.literal_eval(m["value"])
if "cert" not in values:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            values["cert"] = os.environ[name]
            break
    else:
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            values["cert"] = "/etc/ssl/certs/ca-certificates.crt"
with open(sys.argv[1], "w") as f:
    f.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(values.items())))
PY
volumes=(--volume "$pipconf:/etc/pip.conf:ro")
cert="$(sed -n 's/^cert = //p' "$pipconf")"
if [ -n "$cert" ]; then
  [ -f "$cert" ] || die "pip's CA bundle $cert does not exist"
  volumes+=(--volume "$cert:$cert:ro")
fi
say "pip configuration for RUN steps: $(grep -v '^\[' "$pipconf" | tr '\n' ' ')"

say "building $image from $repo/Dockerfile"
build_start=$SECONDS
bud=("${bah[@]}" bud --quiet --layers --pull=never --network host "${volumes[@]}" -f "$repo/Dockerfile")
# The first stage gets a name of its own, so that the prune below keeps its layers (the
# cache of the slow pip install) along with the final image's.
"${bud[@]}" --target build -t "localhost/secretsync-build:$version" "$repo" >&2 \
  || die "buildah bud of the Dockerfile's 'build' stage failed (output above)"
"${bud[@]}" -t "$image" "$repo" >&2 || die "buildah bud failed (output above)"
# Images no longer named by anything (earlier builds of changed sources) would otherwise
# pile up in the cache, about 400 MB per build.
"${bah[@]}" rmi --prune >/dev/null 2>&1 || true
say "built in $((SECONDS - build_start))s"

# --- checks on what was built ---------------------------------------------------------------

user="$("${bah[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$image")"
[ "$user" = "65532:65532" ] || die "the image runs as '$user', not 65532:65532"

ctr="$("${bah[@]}" from --quiet --pull=never "$image")"
cleanup_ctr() { "${bah[@]}" umount "$ctr" >/dev/null 2>&1 || true; "${bah[@]}" rm "$ctr" >/dev/null 2>&1 || true; }
trap 'cleanup_ctr; rm -f "$pipconf"; cleanup_host' EXIT
mnt="$("${bah[@]}" mount "$ctr")"
# pip as a package (in any site- or dist-packages) or a command; a compiler, assembler or
# linker as a command (runtime libraries such as libgcc are expected and fine).
found="$(
  find "$mnt" -xdev \( -path '*-packages/pip' -o -path '*-packages/pip-*.dist-info' \) -print
  for dir in usr/bin usr/sbin usr/local/bin usr/local/sbin bin sbin opt/secretsync/bin; do
    [ -d "$mnt/$dir" ] || continue
    find "$mnt/$dir" -maxdepth 1 \( -name 'pip' -o -name 'pip3*' -o -name 'gcc*' -o -name 'g++*' \
      -o -name 'cc' -o -name 'c++' -o -name 'clang*' -o -name 'tcc' -o -name 'as' -o -name 'ld' \
      -o -name 'ld.bfd' -o -name 'ld.gold' -o -name 'x86_64-linux-gnu-*' \) -print
  done
)"
[ -z "$found" ] || die "the final stage holds pip or a compiler: ${found//$mnt/}"
size="$(du -sh --apparent-size "$mnt" | cut -f1)"

# --network none: buildah's default network for `run` is its CNI bridge, which creates
# the host bridge cni-podman0, iptables chains and turns IP forwarding on.
got="$("${bah[@]}" run --network none --user 65532:65532 "$ctr" -- secretsync --version)" \
  || die "secretsync --version failed inside the image"
[ "$got" = "secretsync $version" ] || die "secretsync --version says '$got', expected 'secretsync $version'"
if "${bah[@]}" run --network none --user 65532:65532 "$ctr" -- python -c 'import pip' 2>/dev/null; then
  die "pip is importable inside the image"
fi
say "checked: user 65532:65532, no pip, no compiler, '$got' runs; root filesystem $size"

# --- export for the node --------------------------------------------------------------------

# containerd's CRI ignores images imported from an oci-archive made by buildah (it tries
# to pull them); a docker-archive imports on containerd 1.6 and 2.x alike.
id="$("${bah[@]}" inspect --type image --format '{{.FromImageID}}' "$image")"
if [ -s "$archive" ] && [ "$(cat "$archive.id" 2>/dev/null)" = "$id" ]; then
  say "archive unchanged: $archive"
else
  rm -f "$archive" "$archive.partial"
  "${bah[@]}" push --quiet "$image" "docker-archive:$archive.partial:$image" >&2
  mv "$archive.partial" "$archive"
  echo "$id" >"$archive.id"
  say "exported $archive ($(du -h "$archive" | cut -f1))"
fi
say "done in $((SECONDS - start))s"
echo "IMAGE=$image"
echo "ARCHIVE=$archive"
