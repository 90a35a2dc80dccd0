"""Read-only listings for `secretsync audit`: whole collections as plain JSON.

The typed client would build a model object per item; the audit only walks dicts, so
each page is read as JSON. Secrets are listed as metadata only
(PartialObjectMetadataList): the audit never receives a Secret's data, even though
RBAC cannot grant a list without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from secretsync.errors import KubeError
from secretsync.kube.client import GROUP, PLURALS, VERSION, Kube

PAGE = 500
JSON = "application/json"
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Collection:
    """One listable resource: its API path under /api or /apis, and a name for messages."""

    kind: str
    group_version: str  # "v1", "apps/v1"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None) -> str:
        root = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if namespace is not None and self.namespaced:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


NAMESPACES = Collection(kind="Namespace", group_version="v1", plural="namespaces", namespaced=False)
PODS = Collection(kind="Pod", group_version="v1", plural="pods")
CONFIG_MAPS = Collection(kind="ConfigMap", group_version="v1", plural="configmaps")
SECRETS = Collection(kind="Secret", group_version="v1", plural="secrets")
SERVICE_ACCOUNTS = Collection(kind="ServiceAccount", group_version="v1", plural="serviceaccounts")
DEPLOYMENTS = Collection(kind="Deployment", group_version="apps/v1", plural="deployments")
STATEFUL_SETS = Collection(kind="StatefulSet", group_version="apps/v1", plural="statefulsets")
DAEMON_SETS = Collection(kind="DaemonSet", group_version="apps/v1", plural="daemonsets")
REPLICA_SETS = Collection(kind="ReplicaSet", group_version="apps/v1", plural="replicasets")
JOBS = Collection(kind="Job", group_version="batch/v1", plural="jobs")
CRON_JOBS = Collection(kind="CronJob", group_version="batch/v1", plural="cronjobs")
SECRET_SYNCS = Collection(
    kind="SecretSync", group_version=f"{GROUP}/{VERSION}", plural=PLURALS["SecretSync"]
)
SECRET_STORES = Collection(
    kind="SecretStore", group_version=f"{GROUP}/{VERSION}", plural=PLURALS["SecretStore"]
)
CLUSTER_SECRET_STORES = Collection(
    kind="ClusterSecretStore",
    group_version=f"{GROUP}/{VERSION}",
    plural=PLURALS["ClusterSecretStore"],
    namespaced=False,
)


def connect() -> Kube:
    """A client for a command line that reads a cluster once: in a Pod, the mounted
    ServiceAccount; elsewhere KUBECONFIG. No configuration is one clear KubeError."""
    try:
        return Kube.connect(workers=4)
    except Exception as exc:  # noqa: BLE001 - the client raises several kinds; say which
        raise KubeError(f"no cluster to read: {type(exc).__name__}: {exc}") from None


async def list_all(
    kube: Kube,
    collection: Collection,
    *,
    namespace: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
) -> list[dict[str, Any]]:
    """Every item of the collection (in one namespace, or all), page by page."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query: list[tuple[str, str | int]] = [("limit", PAGE)]
        if token:
            query.append(("continue", token))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        page = await kube.get_json(
            f"list {collection.kind}s" + (f" in {namespace}" if namespace else ""),
            collection.path(namespace),
            query,
            METADATA_ONLY if metadata_only else JSON,
        )
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return items
