#!/usr/bin/env bash
# Installs the Debian packages the one-node environment and `make image` use
# (tests/harness/node.py, tools/image/build.sh). Idempotent: packages already
# installed are left as they are, so CI can call it on every run. Needs root
# (CI and the development machines run as root; nothing here uses sudo).
#
#   bash tools/node/install-debs.sh
set -euo pipefail

packages=(
  buildah                       # builds the operator's image from the Dockerfile, no daemon
  debootstrap                   # the stand-in for the unreachable python:3.11-slim-bookworm base
  runc                          # the OCI runtime containerd starts Pods with
  containernetworking-plugins   # CNI bridge, host-local, loopback: the Pod network
  dnsmasq-base                  # answers kubernetes.default.svc for Pods, forwards nothing
  iptables                      # the DNAT rules that reach loopback services from Pods
  iproute2                      # the bridge, routes and netns inspection
  ca-certificates               # the machine's CA bundle, mounted into RUN steps
  fuse-overlayfs                # buildah's fallback when the kernel's overlay refuses
  postgresql                    # the database Vault's database engine issues logins for (tests, demo)
)

missing=()
for pkg in "${packages[@]}"; do
  # dpkg-query's status is "install ok installed" only for fully installed packages.
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" = 0 ]; then
  echo "install-debs: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-debs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: buildah would otherwise pull in podman-era extras (and
# containerd via docker.io suggestions) that this environment does not use.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-debs: done"
