"""`--from-cluster`: the ESO objects a live cluster holds, as input documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from secretsync.convert import stores
from secretsync.convert.read import GROUP, VERSIONS, Document
from secretsync.errors import KubeError, KubeNotFoundError
from secretsync.kube import Kube
from secretsync.kube import inventory as inv

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
    # The annotations of the ServiceAccounts AWS stores' jwt auth names, by (namespace,
    # name): those that could be read.
    service_accounts: dict[tuple[str, str], dict[str, str]]


async def _list(kube: Kube, plural: str, namespace: str | None) -> list[Document]:
    for version in VERSIONS:  # the first one the apiserver serves is read
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
    wanted = {stores.aws_service_account(d) for d in docs if d.group == GROUP}
    accounts = {}
    for where in sorted(w for w in wanted if w is not None):
        found = await _service_account(kube, *where)
        if found is not None:
            accounts[where] = found
    return ClusterInput(docs, labels, accounts)


async def _service_account(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    """A ServiceAccount's annotations; None when it is missing or may not be read (the
    report then says the role it carries is not known)."""
    try:
        found = await inv.list_all(
            kube,
            inv.SERVICE_ACCOUNTS,
            namespace=namespace,
            field_selector=f"metadata.name={name}",
        )
    except KubeError:
        return None
    for item in found:
        meta = item.get("metadata") or {}
        if meta.get("name") == name:
            return {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    return None
