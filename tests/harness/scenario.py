"""Small steps the integration tests and the demo share: apply manifests, wait for
a SecretSync's status, read a Secret."""

from __future__ import annotations

import base64
from typing import Any, cast

import kubernetes
import yaml

from harness import kube
from harness.devenv import DevEnv

API = "secretsync.io/v1alpha1"
GROUP, VERSION = "secretsync.io", "v1alpha1"
# kubectl's names for the kinds, qualified: External Secrets Operator has a SecretStore and
# a ClusterSecretStore too, and with both installed (a move from it) a bare name may mean
# its kind (tests/integration/test_convert.py installs stand-ins of its CRDs).
SECRET_SYNCS = "secretsyncs.secretsync.io"
SECRET_STORES = "secretstores.secretsync.io"
CLUSTER_SECRET_STORES = "clustersecretstores.secretsync.io"
RESOURCES = {
    "SecretSync": SECRET_SYNCS,
    "SecretStore": SECRET_STORES,
    "ClusterSecretStore": CLUSTER_SECRET_STORES,
}


def apply(env: DevEnv, *docs: dict[str, Any]) -> None:
    env.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))


def service_account(api: Any, namespace: str, name: str) -> None:
    try:
        kubernetes.client.CoreV1Api(api).create_namespaced_service_account(
            namespace,
            kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


def get_sync(api: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "secretsyncs", name
    )
    return cast(dict[str, Any], obj)


def condition(obj: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition, which must be there."""
    cond = ready(obj)
    assert cond is not None, f"no Ready condition in {obj.get('status')}"
    return cond


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond["type"] == "Ready":
            return dict(cond)
    return None


def wait_for_reason(
    api: Any, namespace: str, name: str, reason: str, *, timeout: float = 60
) -> dict[str, Any]:
    """Wait until the SecretSync's Ready condition has the reason, at its current generation."""

    def probe() -> dict[str, Any] | None:
        obj = get_sync(api, namespace, name)
        cond = ready(obj)
        generation = obj["metadata"]["generation"]
        if cond and cond["reason"] == reason and cond.get("observedGeneration") == generation:
            return obj
        return None

    def describe() -> str:
        try:
            return str(ready(get_sync(api, namespace, name)))
        except Exception as exc:  # noqa: BLE001 - only for the failure message
            return repr(exc)

    try:
        return kube.eventually(probe, timeout=timeout, what=f"{namespace}/{name} to be {reason}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; Ready is {describe()}") from None


def store_ready(
    api: Any, kind: str, namespace: str, name: str, *, timeout: float = 60
) -> dict[str, Any]:
    custom = kubernetes.client.CustomObjectsApi(api)
    plural = {"SecretStore": "secretstores", "ClusterSecretStore": "clustersecretstores"}[kind]

    def probe() -> dict[str, Any] | None:
        obj = cast(
            dict[str, Any],
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            if namespace
            else custom.get_cluster_custom_object(GROUP, VERSION, plural, name),
        )
        cond = ready(obj)
        return dict(cond) if cond else None

    return kube.eventually(probe, timeout=timeout, what=f"{kind} {name} to report Ready")


def secret(api: Any, namespace: str, name: str) -> Any:
    """The Secret object, or None."""
    try:
        return kubernetes.client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def secret_data(api: Any, namespace: str, name: str) -> dict[str, bytes] | None:
    obj = secret(api, namespace, name)
    if obj is None:
        return None
    return {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}


def events_for(api: Any, namespace: str, name: str) -> list[Any]:
    items = kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e for e in items if e.involved_object.name == name]


def deployment(namespace: str, name: str) -> dict[str, Any]:
    """A Deployment whose Pods never run (no image pull): a target for rollout restarts."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }
