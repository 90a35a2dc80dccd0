"""`secretsync run` starts kopf against the current kubeconfig and says what it watches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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


def test_a_missing_state_namespace_is_one_clear_line_and_exit_status_2(env: DevEnv) -> None:
    missing = f"nowhere-{os.getpid()}"
    proc = subprocess.run(
        [sys.executable, "-m", "secretsync", "run", "--state-namespace", missing],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env.exports()},
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"secretsync: the state namespace {missing!r} does not exist; create it or pass "
        f"--state-namespace (the operator keeps the key of status.dataHash in Secret "
        f"{missing}/secretsync-state)"
    ]


def test_readyz_says_ready_and_active_when_the_api_answers(env: DevEnv, tmp_path: Path) -> None:
    ensure_state_namespace(env)
    health = free_port()
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretsync", "run", "--health-port", str(health)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env.exports()},
        )
    try:
        report = kube.eventually(
            lambda: _json(f"http://127.0.0.1:{health}/readyz"),
            timeout=60,
            what="/readyz to answer 200",
        )
        assert report == {"ready": True, "role": "active", "checks": {"api": "ok", "engine": "ok"}}
        assert _json(f"http://127.0.0.1:{health}/healthz") == {"alive": True, "role": "active"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _json(url: str) -> Any:
    """The JSON body of a 200 answer, else None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
