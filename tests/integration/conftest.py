"""The delivery tests' own environment.

The chart, RBAC and kustomize tests install the operator's RBAC and run cluster-wide
operators as its ServiceAccount. On the session's shared cluster, the session's admin
operator (tests/conftest.py's `operator`) would sync the same SecretSyncs, so an RBAC
gap in the ServiceAccount would go unseen, and a second cluster-wide operator would
disturb other tests. So they get a control plane (with OpenBao and moto) of their own;
it starts in seconds once tools/build.sh has built the binaries.

SECRETSYNC_DELIVERY_DEVENV_DIR names a folder where `python -m harness.devenv up` runs
one already, for a fast loop while developing. With SECRETSYNC_TEST_KUBECONFIG (an
external cluster) the delivery tests use that cluster too; they still prove who wrote a
status (its dataHash is keyed with the release's own state key).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import devenv
from harness.processes import EnvError, Processes


@pytest.fixture(scope="session")
def delivery_env() -> Iterator[devenv.DevEnv]:
    reuse = os.environ.get("SECRETSYNC_DELIVERY_DEVENV_DIR")
    if reuse:
        state = Path(reuse) / "devenv.json"
        if not state.exists() or not any(s.alive() for s in Processes.load(Path(reuse)).started):
            pytest.fail(f"SECRETSYNC_DELIVERY_DEVENV_DIR={reuse} holds no running environment")
        yield devenv.DevEnv.from_json(state.read_text())
        return
    run_dir = devenv.REPO / ".devenv" / f"delivery-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        environment, procs = devenv.start(run_dir)
    except EnvError as exc:
        pytest.fail(f"the delivery environment did not start: {exc}", pytrace=False)
    try:
        yield environment
    finally:
        procs.stop_all()
