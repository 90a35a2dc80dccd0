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

from collections.abc import Iterator

import pytest

from harness import devenv, sessions


@pytest.fixture(scope="session")
def delivery_env() -> Iterator[devenv.DevEnv]:
    yield from sessions.environment(
        reuse_variable="SECRETSYNC_DELIVERY_DEVENV_DIR",
        prefix="delivery",
        what="delivery environment",
    )
