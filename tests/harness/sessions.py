"""The environment behind a pytest session fixture: reused when a variable names a running
`make devenv-up` folder, else started for the session and stopped after it. A component
that cannot start fails the session with its log; nothing is ever skipped for it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import devenv
from harness.processes import EnvError, Processes


def environment(
    *, reuse_variable: str, prefix: str, what: str, audit: bool = False, node: bool = False
) -> Iterator[devenv.DevEnv]:
    """Yield the environment (for `yield from` in a session fixture); with `node`, one with
    a node that runs Pods (devenv.start(node=True))."""
    reuse = os.environ.get(reuse_variable)
    if reuse:
        state = Path(reuse) / "devenv.json"
        if not state.exists() or not any(s.alive() for s in Processes.load(Path(reuse)).started):
            pytest.fail(f"{reuse_variable}={reuse} holds no running environment")
        reused = devenv.DevEnv.from_json(state.read_text())
        if node and reused.node is None:
            pytest.fail(f"{reuse_variable}={reuse} runs no node; start it with `up --node`")
        yield reused
        return
    run_dir = devenv.REPO / ".devenv" / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        started, procs = devenv.start(run_dir, audit=audit, node=node)
    except EnvError as exc:
        pytest.fail(f"the {what} did not start: {exc}", pytrace=False)
    try:
        yield started
    finally:
        devenv.stop(procs)
