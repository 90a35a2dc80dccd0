"""What the fault cases build on: teams (a namespace, its identity, its store), many
SecretSyncs at once, and waiting for all of them."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import kubernetes

from harness import kube, scenario, vaultsetup
from harness.devenv import DevEnv

ACCOUNT = "123456789012"
APPLY_CHUNK = 100  # manifests per kubectl apply


def value() -> str:
    """A secret value no test could guess, and the leak scan can look for."""
    return "v-" + os.urandom(12).hex()


def namespace(api: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubernetes.client.CoreV1Api(api).create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    return name


def vault_team(env: DevEnv, api: Any, prefix: str, *, server: str) -> str:
    """A namespace reading secret/<namespace>/* from OpenBao (through `server`, e.g. a
    fault proxy) as its own ServiceAccount, with SecretStore `vault`."""
    ns = namespace(api, prefix)
    vaultsetup.bind_namespace(env, api, ns)
    store = vaultsetup.store(env, ns)
    store["spec"]["provider"]["vault"]["server"] = server
    scenario.apply(env, store)
    return ns


def role(ns: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{ns}-reader"


def aws_team(env: DevEnv, api: Any, prefix: str, *, endpoint: str, **spec: Any) -> str:
    """A namespace reading Secrets Manager (through `endpoint`) as its own role, assumed
    with its `sync` ServiceAccount's token; SecretStore `aws` (spec adds store fields)."""
    ns = namespace(api, prefix)
    scenario.service_account(api, ns, "sync")
    store = {
        "apiVersion": scenario.API,
        "kind": "SecretStore",
        "metadata": {"name": "aws", "namespace": ns},
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": "eu-west-1",
                    "endpoint": endpoint,
                    "role": role(ns),
                    "auth": {"serviceAccount": {"name": "sync"}},
                }
            },
            **spec,
        },
    }
    scenario.apply(env, store)
    return ns


def sync(
    ns: str, name: str, key: str, *, store: str = "vault", refresh: str = "1h", prop: str = "p"
) -> dict[str, Any]:
    return vaultsetup.sync(
        ns,
        name,
        {
            "refreshInterval": refresh,
            "data": [{"secretKey": "value", "remoteRef": {"key": key, "property": prop}}],
        },
        store=store,
    )


def apply_many(env: DevEnv, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), APPLY_CHUNK):
        scenario.apply(env, *docs[start : start + APPLY_CHUNK])


def syncs_in(api: Any, ns: str) -> list[dict[str, Any]]:
    listed: Any = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
        scenario.GROUP, scenario.VERSION, ns, "secretsyncs"
    )
    return list(listed["items"])


def unsynced(api: Any, ns: str, *, reason: str = "Synced") -> list[str]:
    """SecretSyncs of the namespace whose status does not (yet) say `reason` for their
    current generation."""
    out = []
    for obj in syncs_in(api, ns):
        cond = scenario.ready(obj) or {}
        current = cond.get("observedGeneration") == obj["metadata"]["generation"]
        if cond.get("reason") != reason or not current:
            out.append(obj["metadata"]["name"])
    return sorted(out)


def wait_all(api: Any, ns: str, count: int, *, timeout: float, reason: str = "Synced") -> float:
    """Seconds until all `count` SecretSyncs of the namespace say `reason`."""
    start = time.monotonic()

    def done() -> bool:
        listed = syncs_in(api, ns)
        return len(listed) == count and not unsynced(api, ns, reason=reason)

    try:
        kube.eventually(done, timeout=timeout, what=f"{count} SecretSyncs in {ns} to be {reason}")
    except TimeoutError as exc:
        left = unsynced(api, ns, reason=reason)
        sample = {
            o["metadata"]["name"]: scenario.ready(o)
            for o in syncs_in(api, ns)
            if o["metadata"]["name"] in left[:3]
        }
        raise TimeoutError(f"{exc}: {len(left)} are not, e.g. {sample}") from None
    return time.monotonic() - start


def wait_for(
    probe: Callable[[], bool], timeout: float, *, state: Callable[[], object] | None = None
) -> None:
    """Wait until the probe says yes; on a timeout, say what `state` shows then."""
    try:
        kube.eventually(probe, timeout=timeout, what="the condition")
    except TimeoutError as exc:
        if state is None:
            raise
        raise TimeoutError(f"{exc}; state: {state()}") from None


def managed_secrets(api: Any, ns: str) -> list[Any]:
    return list(
        kubernetes.client.CoreV1Api(api)
        .list_namespaced_secret(ns, label_selector="app.kubernetes.io/managed-by=secretsync")
        .items
    )


def versions(secrets: Iterable[Any]) -> dict[str, str]:
    """name -> resourceVersion of each Secret."""
    return {s.metadata.name: s.metadata.resource_version for s in secrets}
