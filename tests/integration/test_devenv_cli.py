"""`make devenv-up` / `make devenv-down`: a shell gets a working environment, and
teardown leaves none of the started processes behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.devenv import EXTERNAL_KUBECONFIG, REPO
from harness.processes import Processes

pytestmark = pytest.mark.integration


def test_devenv_up_serves_kubectl_and_bao_and_down_stops_every_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != EXTERNAL_KUBECONFIG}
    env["PYTHONPATH"] = str(REPO / "tests")
    devenv = [sys.executable, "-m", "harness.devenv"]
    up = subprocess.run(
        [*devenv, "up", "--dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    started = Processes.load(tmp_path).started
    try:
        assert {s.name for s in started} >= {
            "etcd",
            "kube-apiserver",
            "openbao",
            "moto",
            "postgres",
        }
        shell = subprocess.run(
            [
                "bash",
                "-c",
                f"source {tmp_path}/env && kubectl get namespaces -o name && bao status",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert "namespace/kube-system" in shell.stdout
        assert "Sealed" in shell.stdout
    finally:
        down = subprocess.run(
            [*devenv, "down", "--dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert [s.name for s in started if s.alive()] == []
    assert not (tmp_path / "env").exists()
