#!/bin/sh
# Build secretsync's wheel from a source tree and install it, with the dependency
# versions pinned in constraints.txt, into a new virtualenv that has no pip, setuptools
# or wheel of its own. The image's build stage runs this, and so does `make image-check`
# (without Docker), so what CI checks is what the image holds.
#
#   tools/image/install.sh SOURCE_DIR VENV_DIR     (PYTHON=python3 by default)
set -eu
src="$1"
venv="$2"
python="${PYTHON:-python3}"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --quiet --no-cache-dir --no-deps --wheel-dir "$wheels" "$src"
"$python" -m venv --without-pip "$venv"
# pip runs from outside the virtualenv and installs into it; .pyc files are compiled now,
# because the container's root filesystem is read-only.
"$python" -m pip --python "$venv/bin/python" install --quiet --no-cache-dir \
  --constraint "$src/constraints.txt" "$wheels"/secretsync-*.whl
echo "install.sh: $(basename "$wheels"/secretsync-*.whl) installed into $venv"
