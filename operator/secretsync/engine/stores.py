"""The stores the operator has seen, and which of them a SecretSync may use."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic

from secretsync.engine import selectors
from secretsync.models.status import Status
from secretsync.models.status import parse as parse_status
from secretsync.models.store import StoreSpec
from secretsync.models.sync import StoreRef


@dataclasses.dataclass(kw_only=True)
class StoreEntry:
    """One SecretStore or ClusterSecretStore as last observed."""

    kind: str
    namespace: str  # "" for a ClusterSecretStore
    name: str
    uid: str
    generation: int
    spec: StoreSpec | None
    spec_error: str | None
    status: Status
    # Set when a sync round suggests the store's Ready may be stale: check it now.
    recheck: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, repr=False)

    @property
    def key(self) -> str:
        return (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else f"{self.kind}/{self.name}"
        )

    @property
    def provider(self) -> str:
        if self.spec is None:
            return "unknown"
        return self.spec.provider.kind()


def parse_store(kind: str, body: Mapping[str, Any]) -> StoreEntry:
    """A store entry from a watch event's body; an unusable spec is kept with its error."""
    meta = body.get("metadata", {})
    spec: StoreSpec | None
    try:
        spec = StoreSpec.model_validate(body.get("spec") or {})
        spec.change_check_seconds  # noqa: B018 - validates the duration now, not at use
        error = None
    except (pydantic.ValidationError, ValueError) as exc:
        spec, error = None, first_error(exc)
    return StoreEntry(
        kind=kind,
        namespace=meta.get("namespace") or "",
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        spec_error=error,
        status=parse_status(body.get("status")),
    )


def first_error(exc: Exception) -> str:
    """The first validation problem, as `spec.<field>: <what>`."""
    if isinstance(exc, pydantic.ValidationError):
        err = exc.errors()[0]
        where = "spec." + ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}"
    return str(exc)


class Stores:
    """Known stores by kind, namespace and name."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, str, str], StoreEntry] = {}

    def put(self, entry: StoreEntry) -> StoreEntry | None:
        """Record the entry; returns the previous one."""
        key = (entry.kind, entry.namespace, entry.name)
        old = self._stores.get(key)
        self._stores[key] = entry
        return old

    def __iter__(self) -> Iterator[StoreEntry]:
        return iter(list(self._stores.values()))

    def __len__(self) -> int:
        return len(self._stores)

    def remove(self, kind: str, namespace: str, name: str) -> StoreEntry | None:
        return self._stores.pop((kind, namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> StoreEntry | None:
        return self._stores.get((kind, namespace, name))

    def current(self, entry: StoreEntry) -> StoreEntry | None:
        """The entry now known under the same kind, namespace and name."""
        return self._stores.get((entry.kind, entry.namespace, entry.name))

    def by_key(self, key: str) -> StoreEntry | None:
        """The store whose `key` this is (a lease state names the store that issued it)."""
        return next((s for s in self._stores.values() if s.key == key), None)

    def lookup(self, ref: StoreRef, sync_namespace: str) -> StoreEntry | None:
        namespace = sync_namespace if ref.kind == "SecretStore" else ""
        return self._stores.get((ref.kind, namespace, ref.name))


def namespace_allowed(store: StoreEntry, namespace: str, labels: Mapping[str, str] | None) -> bool:
    """A ClusterSecretStore's `conditions`: may a SecretSync in this namespace use it?"""
    if store.spec is None or not store.spec.conditions:
        return True
    for cond in store.spec.conditions:
        if namespace in cond.namespaces:
            return True
        selector = cond.namespace_selector
        if selector is not None and labels is not None and selectors.matches(selector, labels):
            return True
    return False


def needs_namespace_labels(store: StoreEntry) -> bool:
    return store.spec is not None and any(
        c.namespace_selector is not None for c in store.spec.conditions
    )
