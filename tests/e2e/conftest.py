"""End-to-end tests: the operator's image (`make image`) runs in Pods of a local node
(harness/node.py), installed the ways users install it (Helm, kubectl -k, Flux), and
the tests check what those Pods did.

ONE environment with a node serves the whole package: it starts at the first test that
needs it (control plane, OpenBao, moto, containerd, kubelet, the image imported) and is
torn down, with the node's leftovers check, when the package's last test is done, so
that tests/integration/test_node.py (which starts a node of its own; one node runs on a
machine at a time) can follow in the same session. A component that cannot start
fails the tests with its log; nothing is ever skipped for it. It needs root and the
Debian packages of tools/node/install-debs.sh.

SECRETSYNC_E2E_DEVENV_DIR names a folder where `python -m harness.devenv up --node --dir
DIR` runs one already, for a fast loop while developing (its image is the one imported
at its start). SECRETSYNC_E2E=full adds the long variants (their docstrings say so).

Every figure a test measures is printed (past pytest's capture) and written to
build/e2e/figures.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from e2e.support import FIGURES, Figures, report
from harness import devenv, sessions


@pytest.fixture(scope="package")
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    found = Figures(request.config)
    begun = time.monotonic()
    yield found
    found.values["tests/e2e wall time"] = {"value": time.monotonic() - begun, "unit": "s"}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(found.values, indent=1) + "\n")
    report(request.config, f"figures written to {FIGURES.relative_to(devenv.REPO)}")


@pytest.fixture(scope="package")
def node_env(figures: Figures) -> Iterator[devenv.DevEnv]:
    """The package's environment with a node; see the module docstring."""
    begun = time.monotonic()
    environment = sessions.environment(
        reuse_variable="SECRETSYNC_E2E_DEVENV_DIR",
        prefix="e2e",
        what="environment with a node",
        node=True,
    )
    env = next(environment)
    figures.record(
        "environment bring-up (image build included)", time.monotonic() - begun, unit="s"
    )
    yield env
    stopping = time.monotonic()
    # The generator's end stops everything and checks that the node left nothing behind.
    for _ in environment:
        pass
    figures.record("environment teardown", time.monotonic() - stopping, "s")
