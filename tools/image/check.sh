#!/bin/sh
# `make image-check`: what CI can prove about the image without a Docker engine.
# Installs the package the way the Dockerfile's build stage does (the same
# tools/image/install.sh) into a fresh virtualenv, runs the entry point from it, checks
# that no installer came along, and lints the Dockerfile with hadolint.
set -eu
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
hadolint="${HADOLINT:-hadolint}"
out=build/image-check

grep -q 'tools/image/install.sh' Dockerfile || {
  echo "image-check: the Dockerfile no longer installs with tools/image/install.sh" >&2
  exit 1
}
rm -rf "$out"
PYTHON="$python" sh tools/image/install.sh . "$out/venv"

want="secretsync $("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
got="$("$out/venv/bin/secretsync" --version)"
[ "$got" = "$want" ] || { echo "image-check: --version says '$got', expected '$want'" >&2; exit 1; }
"$out/venv/bin/secretsync" run --help >"$out/run-help.txt"
grep -q -- '--peering' "$out/run-help.txt" || { echo "image-check: run --help lacks --peering" >&2; exit 1; }
if "$out/venv/bin/python" -c 'import pip' 2>/dev/null; then
  echo "image-check: pip is installed in the image's virtualenv" >&2
  exit 1
fi
"$hadolint" Dockerfile
echo "image-check: wheel installs and runs ($got), no pip in the virtualenv, hadolint clean"
