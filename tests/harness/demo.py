"""`make demo`: secretsync end to end on the local environment (or SECRETSYNC_TEST_KUBECONFIG's
cluster).

Starts the environment (reusing one from `make devenv-up` if it runs), applies the
CRDs, seeds a secret in moto (AWS Secrets Manager) and in OpenBao (Vault) with the
Vault policy and role a platform team would create, applies examples/, runs
`secretsync run` as a separate process, and prints what it synced: the
SecretSyncs' status and the Secrets' keys, never their values.

`make demo NODE=1` (`--node`) runs the operator the way users do instead: the
environment gets a node that runs Pods (harness/node.py; root, tools/node/install-debs.sh),
`helm install --wait` installs charts/secretsync with the image `make image` builds, and
the examples' stores name the addresses OpenBao and moto have from inside a Pod. It
prints the operator's Pods and the audit record from the acting Pod's log too.

The environment the demo starts is stopped at the end, unless `KEEP=1` (`--keep`): then
it keeps running, and the demo says how to use it and how to stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
from cryptography import x509

from harness import devenv, pods, postgres, releases, scenario, vaultengines
from harness import operator as op
from harness.processes import Processes, log_tail

DEVENV_DIR = devenv.REPO / ".devenv"
EXAMPLES = devenv.REPO / "examples"


RELEASE, RELEASE_NAMESPACE = "secretsync", "secretsync-system"
EXAMPLE_FILES = ("aws.yaml", "vault.yaml", "vault-dynamic.yaml")
# What the demo role may issue (docs/vault.md: the minimal policy per engine).
ISSUING_POLICY = (
    'path "database/creds/demo" { capabilities = ["read"] }\n'
    'path "pki/issue/demo" { capabilities = ["update"] }\n'
    'path "pki/revoke" { capabilities = ["update"] }\n'
)


@contextlib.contextmanager
def environment(*, node: bool = False, keep: bool = False) -> Iterator[devenv.DevEnv]:
    """The running `make devenv-up` environment, or a fresh one for the demo (with a node
    if asked), stopped at the end unless `keep`."""
    state = DEVENV_DIR / "devenv.json"
    if state.exists() and any(s.alive() for s in Processes.load(DEVENV_DIR).started):
        running = devenv.DevEnv.from_json(state.read_text())
        if not node or running.node is not None:
            print(f"demo: using the environment of `make devenv-up` in {DEVENV_DIR}")
            yield running
            return
        print(f"demo: the environment of `make devenv-up` in {DEVENV_DIR} has no node")
    run_dir = DEVENV_DIR / f"demo-{'node-' if node else ''}{time.strftime('%Y%m%d-%H%M%S')}"
    parts = "etcd, kube-apiserver, kube-controller-manager, OpenBao, moto and PostgreSQL"
    if node:
        parts += ", and a node (containerd, kubelet, kube-scheduler) with the image"
    print(f"demo: starting {parts}")
    begun = time.monotonic()
    env, procs = devenv.start(run_dir, node=node)
    print(f"demo: environment up in {time.monotonic() - begun:.0f}s ({run_dir})")
    try:
        yield env
    finally:
        if keep:
            (run_dir / "env").write_text(env.env_file_text())
            print(f"demo: KEEP=1: the environment keeps running; `source {run_dir}/env` to use it")
            print(
                "demo: stop it with `PYTHONPATH=tests .venv/bin/python -m harness.devenv "
                f"down --dir {run_dir}`"
            )
        else:
            devenv.stop(procs)  # the node too, checking that it left nothing behind
            print("demo: environment stopped")


def manifest(env: devenv.DevEnv, name: str, *, in_pods: bool = False) -> str:
    """An example with the environment's addresses filled in; with `in_pods`, those that
    work from inside a Pod of the node."""
    values = env.exports()
    if in_pods:
        assert env.node is not None, "the environment has no node"
        values["AWS_ENDPOINT_URL"] = env.node.pod_aws_endpoint
        values["VAULT_ADDR"] = env.node.pod_vault_addr
    text = (EXAMPLES / name).read_text()
    for key, value in values.items():
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
        {"policy": 'path "secret/data/demo/*" { capabilities = ["read"] }\n' + ISSUING_POLICY},
    )
    vaultengines.database_role(env, "demo", default_ttl="1h", max_ttl="24h")
    vaultengines.pki_role(env, "demo", max_ttl="72h")
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


def show_synced(env: devenv.DevEnv) -> None:
    """Wait for the examples' SecretSyncs, then print them and their Secrets' keys."""
    api = env.api_client()
    for sync in ("db", "api", "db-dynamic", "web-tls"):
        scenario.wait_for_reason(api, "demo", sync, "Synced", timeout=60)
    print(env.kubectl("get", "secretstores,secretsyncs", "-n", "demo").stdout)
    for secret in ("db-credentials", "api-config", "db-login", "web-tls"):
        data = scenario.secret_data(api, "demo", secret) or {}
        print(f"demo: Secret demo/{secret} holds keys: {', '.join(sorted(data))}")
    show_issued(env, api)


def show_issued(env: devenv.DevEnv, api: object) -> None:
    """The issued credentials work: the login is accepted by PostgreSQL, the certificate
    verifies against the CA beside it. Lease times from the status; no value printed."""
    for sync in ("db-dynamic", "web-tls"):
        lease = (scenario.get_sync(api, "demo", sync).get("status") or {}).get("lease") or {}
        print(
            f"demo: SecretSync demo/{sync}: expires at {lease.get('expiresAt')}, renewed or "
            f"issued anew at {lease.get('nextRenewalAt')}"
        )
    login = scenario.secret_data(api, "demo", "db-login") or {}
    result = postgres.psql(
        env.pg, login["username"].decode(), login["password"].decode(), "select 1"
    )
    print(f"demo: PostgreSQL accepts the issued login: {result.returncode == 0}")
    tls = scenario.secret_data(api, "demo", "web-tls") or {}
    leaf = x509.load_pem_x509_certificates(tls["tls.crt"])[0]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(tls["ca.crt"]))
    print(
        f"demo: certificate {leaf.subject.rfc4514_string()} verifies against ca.crt, "
        f"valid until {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    )


def show_audit(env: devenv.DevEnv) -> None:
    """`secretsync audit` over the demo namespace, as a user runs it (docs/audit.md), after
    someone made a Secret by hand there (an anti-pattern it reports)."""
    env.kubectl(
        "create", "secret", "generic", "legacy-api-key", "-n", "demo",
        "--from-literal=key=" + secrets.token_urlsafe(24),
        check=False,  # there from an earlier run (KEEP=1)
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "secretsync", "audit", "--namespace", "demo"],
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(f"demo: $ secretsync audit --namespace demo  (exit {proc.returncode})")
    print(proc.stdout + proc.stderr)


def run_as_process(env: devenv.DevEnv) -> None:
    """`secretsync run` as a process beside the environment."""
    env.kubectl("apply", "-f", str(devenv.REPO / "crds"))
    env.kubectl("apply", "-f", str(EXAMPLES / "namespace.yaml"))
    seed(env)
    log = env.run_dir / f"demo-operator-{os.getpid()}.log"
    with op.running(env, log, "--log-level", "info"):
        for name in EXAMPLE_FILES:
            env.kubectl("apply", "-f", "-", input_text=manifest(env, name))
        show_synced(env)
        show_audit(env)
        audit = [line for line in log.read_text().splitlines() if "secretsync.audit" in line]
        print(f"demo: {len(audit)} audit records, the first:\n  {audit[0] if audit else '-'}")
        print("demo: operator log (last lines):\n" + log_tail(Path(log), 5))


def run_in_pods(env: devenv.DevEnv) -> None:
    """The chart installed with the built image; the operator's Pods do the syncing."""
    release = releases.Release(env=env, name=RELEASE, namespace=RELEASE_NAMESPACE)
    image = pods.operator_image(env)
    installed = env.kubectl(
        "get", "deployment", release.fullname, "-n", release.namespace, check=False
    )
    if installed.returncode == 0:
        print(f"demo: release {RELEASE} is installed already in {RELEASE_NAMESPACE}")
    else:
        seconds = release.install()
        print(
            f"demo: helm install --wait {RELEASE} charts/secretsync ({image}): "
            f"Pods Ready in {seconds:.0f}s"
        )
    env.kubectl("apply", "-f", str(EXAMPLES / "namespace.yaml"))
    seed(env)
    for name in EXAMPLE_FILES:
        env.kubectl("apply", "-f", "-", input_text=manifest(env, name, in_pods=True))
    show_synced(env)
    show_audit(env)
    print(env.kubectl("get", "pods", "-o", "wide", "-n", RELEASE_NAMESPACE).stdout)
    active = pods.active_pod(env.api_client(), release.namespace, release.selector)
    reads = pods.audit_records(pods.log(env, release.namespace, active.name))
    first = json.dumps(reads[0]) if reads else "-"
    print(f"demo: {active.name} acts (the other Pod stands by); its first audit record:")
    print(f"  {first}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__)
    parser.add_argument(
        "--node", action="store_true", help="run the operator in Pods (make demo NODE=1)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the environment running (make demo KEEP=1)"
    )
    args = parser.parse_args(argv)
    with environment(node=args.node, keep=args.keep) as env:
        if args.node:
            run_in_pods(env)
        else:
            run_as_process(env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
