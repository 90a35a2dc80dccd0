"""The fault suite's environment: a control plane (with OpenBao and moto) of its own, since
its tests stop the apiserver, stall watches and throttle providers, which would disturb
every other test; the apiserver's audit log is on, to count requests by user.

`SECRETSYNC_FAULTS=full` (`make faults`) runs every case at its full size and length;
without it (`make test`, CI) the same cases run at a size that fits CI. Each case
records what it measured with `figures`; the run writes them to
build/faults/<size>/results.json, from which docs/reliability.md quotes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faults.size import SIZE
from harness import devenv, faults, sessions

RESULTS = devenv.REPO / "build" / "faults" / SIZE / "results.json"


@pytest.fixture(scope="session")
def faults_env() -> Iterator[devenv.DevEnv]:
    yield from sessions.environment(
        reuse_variable="SECRETSYNC_FAULTS_DEVENV_DIR",
        prefix="faults",
        what="fault suite's environment",
        audit=True,
    )


@pytest.fixture(scope="session")
def _session_plane(faults_env: devenv.DevEnv) -> Iterator[faults.ControlPlane]:
    control = faults.ControlPlane(faults_env)
    yield control
    # Only at the session's end: a component a test started again (after a restart or
    # a 410) is the one every later module uses, and the environment's own teardown
    # knows only the originals. A reused environment keeps running for `devenv-down`.
    control.close(keep_running=bool(os.environ.get("SECRETSYNC_FAULTS_DEVENV_DIR")))


@pytest.fixture
def plane(_session_plane: faults.ControlPlane) -> Iterator[faults.ControlPlane]:
    """Stops and starts the suite's etcd and kube-apiserver; after the test, whatever it
    left stopped (a failed test) is started again for the tests after it."""
    yield _session_plane
    _session_plane.ensure_running()


@pytest.fixture(scope="session")
def faults_api(faults_env: devenv.DevEnv) -> Any:
    """An admin client of the fault suite's cluster."""
    return faults_env.api_client()


@pytest.fixture(scope="session")
def faults_crds(faults_env: devenv.DevEnv) -> None:
    faults_env.kubectl("apply", "-f", str(devenv.REPO / "crds"))
    faults_env.wait_established(
        "secretsyncs.secretsync.io",
        "secretstores.secretsync.io",
        "clustersecretstores.secretsync.io",
    )


@pytest.fixture(scope="session")
def faults_log(faults_env: devenv.DevEnv) -> Path:
    """Every operator of the suite appends here, at debug level (the leak scan reads it)."""
    return faults_env.run_dir / "operators.log"


@pytest.fixture(scope="session")
def faults_values() -> set[bytes]:
    """Every secret value the suite put into a provider, for its leak scan."""
    return set()


@pytest.fixture(scope="session")
def _recorded() -> Iterator[dict[str, dict[str, Any]]]:
    """The figures of the session's passed cases, written to RESULTS at its end."""
    recorded: dict[str, dict[str, Any]] = {}
    yield recorded
    if not recorded:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text()).get("cases", {})
    previous.update(recorded)  # a partial run keeps the other cases' last figures
    RESULTS.write_text(
        json.dumps(
            {"size": SIZE, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "cases": previous},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


@pytest.fixture
def figures(
    request: pytest.FixtureRequest, _recorded: dict[str, dict[str, Any]]
) -> Iterator[Callable[..., None]]:
    """figures(case, **measured): what a case measured, for docs/reliability.md; kept
    only if the test passes (a failed run's figures describe no passing case)."""
    mine: dict[str, dict[str, Any]] = {}

    def record(case: str, **measured: Any) -> None:
        mine.setdefault(case, {}).update(measured)

    yield record
    if request.node.stash.get(_PASSED, False):
        _recorded.update(mine)
