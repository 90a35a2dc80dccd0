"""`secretsync run` starts kopf against the current kubeconfig and says what it watches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import kube
from harness.devenv import DevEnv
from harness.operator import ensure_state_namespace
from harness.processes import free_port, http_ok

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


def test_secretsync_run_watches_the_namespace_and_serves_health_and_metrics(
    env: DevEnv, namespace: str, tmp_path: Path
) -> None:
    ensure_state_namespace(env)  # where the operator keeps its key: needed to start
    health, metrics = free_port(), free_port()
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretsync",
                "run",
                "--namespace",
                namespace,
                "--health-port",
                str(health),
                "--metrics-port",
                str(metrics),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env.exports()},
        )
    try:
        kube.eventually(
            lambda: (
                f"watching SecretSync/SecretStore/ClusterSecretStore.secretsync.io in {namespace}"
                in log.read_text()
            ),
            timeout=60,
            what="the operator to log what it watches",
        )
        kube.eventually(
            lambda: http_ok(f"http://127.0.0.1:{health}/healthz"), timeout=30, what="/healthz"
        )
        assert http_ok(f"http://127.0.0.1:{metrics}/metrics")
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()
