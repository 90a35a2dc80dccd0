"""`--from-cluster`: the ESO objects a live cluster holds, as input documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from secretsync.convert.read import Document
from secretsync.errors import KubeNotFoundError
from secretsync.kube import Kube
from secretsync.kube import inventory as inv

GROUP = "external-secrets.io"
VERSIONS = ("v1", "v1beta1")  # the first one the apiserver serves is read
KINDS = {
    "clustersecretstores": "ClusterSecretStore",
    "secretstores": "SecretStore",
    "externalsecrets": "ExternalSecret",
    "clusterexternalsecrets": "ClusterExternalSecret",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterInput:
    documents: list[Document]
    namespace_labels: dict[str, dict[str, str]]


async def _list(kube: Kube, plural: str, namespace: str | None) -> list[Document]:
    for version in VERSIONS:
        collection = inv.Collection(
            kind=KINDS[plural],
            group_version=f"{GROUP}/{version}",
            plural=plural,
            namespaced=plural in ("secretstores", "externalsecrets"),
        )
        try:
            items = await inv.list_all(kube, collection, namespace=namespace)
        except KubeNotFoundError:
            continue  # that version (or ESO's CRD) is not served
        where = f"cluster:{plural}.{GROUP}/{version}"
        for item in items:
            item.setdefault("apiVersion", collection.group_version)
            item.setdefault("kind", collection.kind)
        return [Document(f"{where}#{i}", item) for i, item in enumerate(items)]
    return []


async def read(kube: Kube, *, namespaces: Sequence[str] = ()) -> ClusterInput:
    """Stores first, then ExternalSecrets and ClusterExternalSecrets; namespaced objects
    from the given namespaces only (all when none is given)."""
    docs: list[Document] = []
    scopes: Sequence[str | None] = namespaces or [None]
    docs.extend(await _list(kube, "clustersecretstores", None))
    for ns in scopes:
        docs.extend(await _list(kube, "secretstores", ns))
    for ns in scopes:
        docs.extend(await _list(kube, "externalsecrets", ns))
    docs.extend(await _list(kube, "clusterexternalsecrets", None))
    listed = await inv.list_all(kube, inv.NAMESPACES)
    labels = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in listed}
    if namespaces:
        labels = {ns: v for ns, v in labels.items() if ns in namespaces}
    return ClusterInput(docs, labels)
