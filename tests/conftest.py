"""Session fixtures over the local environment (see harness/devenv.py).

The environment starts once per test session, unless SECRETSYNC_DEVENV_DIR
names a folder where `make devenv-up` already runs one (a fast loop while
developing). A component that cannot start fails the session with its log;
nothing is ever skipped for it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from harness import devenv, sessions
from harness.processes import free_port


@pytest.fixture(scope="session")
def env() -> Iterator[devenv.DevEnv]:
    yield from sessions.environment(
        reuse_variable="SECRETSYNC_DEVENV_DIR", prefix="pytest", what="local environment"
    )


@pytest.fixture(scope="session")
def api(env: devenv.DevEnv) -> Any:
    """An admin kubernetes.client.ApiClient."""
    return env.api_client()


@pytest.fixture(scope="session")
def crds(env: devenv.DevEnv) -> None:
    """The CRDs applied with the built kubectl, and established."""
    env.kubectl("apply", "-f", str(devenv.REPO / "crds"))
    env.wait_established(
        "secretsyncs.secretsync.io",
        "secretstores.secretsync.io",
        "clustersecretstores.secretsync.io",
    )


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    core = kubernetes.client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def operator_log(env: devenv.DevEnv) -> Path:
    """Everything the operator processes of this session printed (logs and audit)."""
    return env.run_dir / f"operator-{os.getpid()}.log"


@pytest.fixture(scope="session")
def operator_metrics() -> str:
    """The URL of the session operator's /metrics."""
    return f"http://127.0.0.1:{free_port()}/metrics"


@pytest.fixture(scope="module")
def operator(
    env: devenv.DevEnv, crds: None, operator_log: Path, operator_metrics: str
) -> Iterator[None]:
    """An operator process watching every namespace, for one test module, at debug level
    so that the leak scan sees everything it could say. Modules that run operators of
    their own do not use it: only one operator acts at a time. All of them append to
    the session's operator log."""
    from harness import operator as op

    port = int(operator_metrics.split(":")[-1].split("/")[0])
    with op.running(env, operator_log, metrics_port=port):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` (the leak scan) run after all others."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def aws(env: devenv.DevEnv) -> Iterator[Any]:
    """The recording proxy in front of moto that stores point at."""
    from harness.awsproxy import AwsRecordingProxy

    proxy = AwsRecordingProxy(env.aws_endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def secret_values() -> set[bytes]:
    """Every secret value the tests put into a provider, for the leak scan."""
    return set()
