"""Small Kubernetes helpers for the tests and the demo (the operator has its own kube/ layer)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes

T = TypeVar("T")


def client(kubeconfig: Path) -> Any:
    """A kubernetes.client.ApiClient for the kubeconfig's current context."""
    # kubernetes.config has no annotations.
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]


def kubectl(
    kubectl_bin: Path,
    kubeconfig: Path,
    *args: str,
    input_text: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the built kubectl against the environment; output is captured as text."""
    proc = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(kubeconfig), *args],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll until the probe returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def token_request(
    api: Any, *, namespace: str, service_account: str, audiences: list[str], seconds: int
) -> str:
    """A ServiceAccount token from the TokenRequest API."""
    core = kubernetes.client.CoreV1Api(api)
    body = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=seconds)
    )
    resp = core.create_namespaced_service_account_token(service_account, namespace, body)
    if resp.status is None or not resp.status.token:
        raise RuntimeError(f"TokenRequest for {namespace}/{service_account} returned no token")
    return str(resp.status.token)
