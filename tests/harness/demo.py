"""`make demo`: the operator on the local environment (or SECRETSYNC_TEST_KUBECONFIG's cluster).

Starts the environment (reusing one from `make devenv-up` if it runs), applies
the CRDs, runs `secretsync run` as a process with the environment's
kubeconfig, shows what it logged, and tears down what it started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import devenv, kube
from harness.processes import Processes, log_tail

DEVENV_DIR = devenv.REPO / ".devenv"


@contextlib.contextmanager
def environment() -> Iterator[devenv.DevEnv]:
    """The running `make devenv-up` environment, or a fresh one for the demo."""
    state = DEVENV_DIR / "devenv.json"
    if state.exists() and any(s.alive() for s in Processes.load(DEVENV_DIR).started):
        print(f"demo: using the environment of `make devenv-up` in {DEVENV_DIR}")
        yield devenv.DevEnv.from_json(state.read_text())
        return
    run_dir = DEVENV_DIR / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    print("demo: starting etcd, kube-apiserver, kube-controller-manager, OpenBao and moto")
    env, procs = devenv.start(run_dir)
    try:
        yield env
    finally:
        procs.stop_all()
        print("demo: environment stopped")


@contextlib.contextmanager
def operator(env: devenv.DevEnv, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`secretsync run` as a separate process, as it runs in a cluster."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretsync",
                "run",
                "--metrics-port",
                "0",
                "--health-port",
                "0",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env.exports()},
        )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    with environment() as env:
        env.kubectl("apply", "-f", str(devenv.REPO / "crds"))
        print("demo: CRDs applied:")
        print(env.kubectl("get", "crd", "-l", "app.kubernetes.io/name=secretsync").stdout)
        log = env.run_dir / "operator.log"
        with operator(env, log, "--all-namespaces"):
            kube.eventually(
                lambda: "watching" in log.read_text(),
                timeout=60,
                what="the operator to start watching",
            )
            print("demo: operator log:\n" + log_tail(log, 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
