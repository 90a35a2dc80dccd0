"""`make demo`: secretsync end to end on the local environment (or SECRETSYNC_TEST_KUBECONFIG's
cluster).

Starts the environment (reusing one from `make devenv-up` if it runs), applies the
CRDs, seeds a secret in moto (AWS Secrets Manager) and in OpenBao (Vault) with the
Vault policy and role a platform team would create, applies examples/, runs
`secretsync run` as a separate process, and prints what it synced: the
SecretSyncs' status and the Secrets' keys, never their values.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import string
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3

from harness import devenv, scenario
from harness import operator as op
from harness.processes import Processes, log_tail

DEVENV_DIR = devenv.REPO / ".devenv"
EXAMPLES = devenv.REPO / "examples"


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


def manifest(env: devenv.DevEnv, name: str) -> str:
    text = (EXAMPLES / name).read_text()
    for key, value in env.exports().items():
        text = text.replace("${" + key + "}", value)
    return text


def seed(env: devenv.DevEnv) -> None:
    """What a platform team would have put in place: the remote secrets, and a Vault
    policy and role for the demo namespace."""

    def random_text() -> str:
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))

    sm = boto3.client(
        "secretsmanager",
        endpoint_url=env.aws_endpoint,
        region_name=devenv.AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for name, value in {
        "demo/db": {"username": "app", "password": random_text()},
        "demo/db-connection": {"host": "db.demo.svc", "port": "5432", "database": "app"},
    }.items():
        with contextlib.suppress(sm.exceptions.ResourceExistsException):
            sm.create_secret(Name=name, SecretString=json.dumps(value))
    addr, token = env.vault_addr, env.vault_token
    devenv.bao_request(
        addr,
        token,
        "POST",
        "secret/data/demo/api",
        {"data": {"client_id": "demo-client", "client_secret": random_text()}},
    )
    devenv.bao_request(
        addr,
        token,
        "PUT",
        "sys/policies/acl/demo",
        {"policy": 'path "secret/data/demo/*" { capabilities = ["read"] }'},
    )
    devenv.bao_request(
        addr,
        token,
        "POST",
        "auth/kubernetes/role/demo",
        {
            "bound_service_account_names": ["demo-sync"],
            "bound_service_account_namespaces": ["demo"],
            "audience": "vault",
            "token_policies": ["demo"],
            "token_ttl": "1h",
        },
    )


def main() -> int:
    with environment() as env:
        env.kubectl("apply", "-f", str(devenv.REPO / "crds"))
        env.kubectl("apply", "-f", str(EXAMPLES / "namespace.yaml"))
        seed(env)
        log = env.run_dir / f"demo-operator-{os.getpid()}.log"
        with op.running(env, log, "--log-level", "info"):
            for name in ("aws.yaml", "vault.yaml"):
                env.kubectl("apply", "-f", "-", input_text=manifest(env, name))
            api = env.api_client()
            for sync in ("db", "api"):
                scenario.wait_for_reason(api, "demo", sync, "Synced", timeout=60)
            print(env.kubectl("get", "secretstores,secretsyncs", "-n", "demo").stdout)
            for secret in ("db-credentials", "api-config"):
                data = scenario.secret_data(api, "demo", secret) or {}
                print(f"demo: Secret demo/{secret} holds keys: {', '.join(sorted(data))}")
            audit = [line for line in log.read_text().splitlines() if "secretsync.audit" in line]
            print(f"demo: {len(audit)} audit records, the first:\n  {audit[0] if audit else '-'}")
            print("demo: operator log (last lines):\n" + log_tail(Path(log), 5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
