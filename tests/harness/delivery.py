"""Helm, kustomize and ServiceAccount helpers for the delivery tests (chart, RBAC,
kustomize): install and render the chart, read what a release put in the cluster, and
act as the operator's ServiceAccount with a kubeconfig carrying its TokenRequest token."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import kubernetes
import yaml

from harness import kube, scenario, vaultsetup
from harness.devenv import REPO, DevEnv

CHART = REPO / "charts" / "secretsync"
KUSTOMIZE = REPO / "deploy" / "kustomize"
TOKEN_SECONDS = 3600


def helm(
    helm_bin: Path,
    *args: str,
    kubeconfig: Path | None = None,
    check: bool = True,
    timeout: float = 180,
) -> str:
    """Run helm; its stdout, or an error with everything it said."""
    cmd = [str(helm_bin), *args]
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def template(helm_bin: Path, *values: str, namespace: str = "ops") -> list[dict[str, Any]]:
    """The chart rendered offline (`helm template`), `values` being `--set` expressions."""
    args = ["template", "rel", str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    return docs(helm(helm_bin, *args))


def docs(text: str) -> list[dict[str, Any]]:
    return [cast(dict[str, Any], d) for d in yaml.safe_load_all(text) if d]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of the kind (and name)."""
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def every(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The operator container of the Deployment."""
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    return cast(dict[str, Any], pod["containers"][0])


def install(env: DevEnv, release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    """`helm install` into the environment (never --wait: no Pod ever runs here); returns
    the manifest Helm applied."""
    args = ["install", release, str(CHART), "--namespace", namespace, "--create-namespace"]
    for value in values:
        args += ["--set", value]
    helm(env.binaries.helm_bin, *args, kubeconfig=env.kubeconfig)
    return manifest(env, release, namespace)


def manifest(env: DevEnv, release: str, namespace: str) -> list[dict[str, Any]]:
    text = helm(
        env.binaries.helm_bin,
        "get",
        "manifest",
        release,
        "--namespace",
        namespace,
        kubeconfig=env.kubeconfig,
    )
    return docs(text)


def uninstall(env: DevEnv, release: str, namespace: str) -> None:
    helm(
        env.binaries.helm_bin,
        "uninstall",
        release,
        "--namespace",
        namespace,
        kubeconfig=env.kubeconfig,
        check=False,
    )


def service_account_kubeconfig(env: DevEnv, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token from TokenRequest
    (the way a Pod's projected token does), not as the environment's admin."""
    token = kube.token_request(
        env.api_client(),
        namespace=namespace,
        service_account=name,
        audiences=[],
        seconds=TOKEN_SECONDS,
    )
    user = f"system:serviceaccount:{namespace}:{name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": env.api_server,
                    "certificate-authority-data": base64.b64encode(env.api_ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def whoami(env: DevEnv, kubeconfig: Path) -> str:
    """The username the apiserver sees for the kubeconfig (`kubectl auth whoami`)."""
    proc = kube.kubectl(
        env.binaries.kubectl,
        kubeconfig,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    )
    return str(proc.stdout.strip())


def run_args(objects: Iterable[dict[str, Any]]) -> list[str]:
    """The `secretsync run ...` arguments of the Deployment, without `run` itself."""
    args = [str(a) for a in container(objects)["args"]]
    assert args[0] == "run", args
    return args[1:]


# --- a namespace that syncs from OpenBao as its own ServiceAccount ---------------------


def vault_team(env: DevEnv, namespace: str) -> None:
    """The namespace, its `sync` ServiceAccount with an OpenBao policy and kubernetes-auth
    role reading only secret/<namespace>/* (harness.vaultsetup), and SecretStore `vault`."""
    api = env.api_client()
    try:
        kubernetes.client.CoreV1Api(api).create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    vaultsetup.bind_namespace(env, api, namespace)
    scenario.apply(env, vaultsetup.store(env, namespace))


def vault_store(env: DevEnv, namespace: str, name: str, *, role: str) -> dict[str, Any]:
    """A SecretStore like the team's, logging in to kubernetes-auth role `role`."""
    store = vaultsetup.store(env, namespace, name=name)
    store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] = role
    return store


def vault_put(env: DevEnv, path: str, data: dict[str, str]) -> None:
    vaultsetup.put(env, path, data)


def secret_sync(
    namespace: str,
    name: str,
    key: str,
    prop: str = "password",
    *,
    store: str = "vault",
    kind: str = "SecretStore",
) -> dict[str, Any]:
    """A SecretSync of one property of a KV secret (by default through the namespace's
    `vault` store)."""
    spec = {
        "refreshInterval": "1h",
        "data": [{"secretKey": prop, "remoteRef": {"key": key, "property": prop}}],
    }
    return vaultsetup.sync(namespace, name, spec, store=store, kind=kind)


def delete_namespace(env: DevEnv, namespace: str) -> None:
    """Delete the namespace and wait until it is gone, so that the next test's operator
    does not meet its leftovers (objects in a terminating namespace refuse writes)."""
    core = kubernetes.client.CoreV1Api(env.api_client())
    try:
        core.delete_namespace(namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    kube.eventually(gone, timeout=120, what=f"namespace {namespace} to be deleted")


def vault_cluster_store(env: DevEnv, name: str, role: str, selector: dict[str, str]) -> None:
    """ClusterSecretStore `name`: OpenBao through kubernetes-auth role `role`, each namespace
    logging in as its own `sync` ServiceAccount, allowed only to namespaces whose labels
    match `selector`."""
    conditions = [{"namespaceSelector": {"matchLabels": selector}}]
    store = vaultsetup.store(
        env, role, kind="ClusterSecretStore", name=name, extra={"conditions": conditions}
    )
    scenario.apply(env, store)


def audit_records(log: Path) -> list[dict[str, Any]]:
    """The audit records (`secret.read`) an operator printed."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"secret.read"' in line:
            record = json.loads(line)
            if record.get("event") == "secret.read":
                out.append(cast(dict[str, Any], record))
    return out


def refusals(log: Path) -> list[str]:
    """The log lines that report a refusal (an HTTP 403, from the apiserver or a provider)."""
    pattern = re.compile(r"\b403\b|Forbidden|forbidden")
    return [line for line in log.read_text(errors="replace").splitlines() if pattern.search(line)]


def state_key(env: DevEnv, namespace: str) -> bytes:
    """The operator's HMAC key (Secret secretsync-state) in its state namespace."""
    secret = scenario.secret_data(env.api_client(), namespace, "secretsync-state")
    assert secret is not None, f"no Secret {namespace}/secretsync-state"
    return secret["hmac-key"]
