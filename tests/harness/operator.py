"""The operator as the tests and the demo run it: `secretsync run` as a separate process
with the environment's kubeconfig, its whole output kept in one log file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes

from harness import kube
from harness.devenv import DevEnv

STATE_NAMESPACE = "secretsync-system"


def ensure_state_namespace(env: DevEnv) -> None:
    core = kubernetes.client.CoreV1Api(env.api_client())
    try:
        core.create_namespace(
            kubernetes.client.V1Namespace(
                metadata=kubernetes.client.V1ObjectMeta(name=STATE_NAMESPACE)
            )
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


@contextlib.contextmanager
def running(
    env: DevEnv,
    log: Path,
    *args: str,
    metrics_port: int = 0,
    extra_env: dict[str, str] | None = None,
    kubeconfig: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the operator (watching every namespace unless args say otherwise), wait until
    it watches, and stop it at the end. Its log is appended to `log`. It talks to the
    apiserver as `kubeconfig` says (default: the environment's admin)."""
    ensure_state_namespace(env)
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretsync",
                "run",
                "--metrics-port",
                str(metrics_port),
                "--health-port",
                "0",
                "--log-level",
                "debug",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            # The operator must not inherit AWS credentials: stores name their identity.
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                "KUBECONFIG": str(kubeconfig or env.kubeconfig),
                **(extra_env or {}),
            },
        )

    def watching() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited ({proc.returncode}); see {log}")
        return "watching SecretSync" in log.read_bytes()[start:].decode(errors="replace")

    try:
        kube.eventually(watching, timeout=60, what="the operator to start watching")
        time.sleep(0.5)  # the watches open right after the startup handler
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
