"""What the aws and vault store converters share: the context of one store's
conversion, and the references a store makes to Secrets, ConfigMaps and
ServiceAccounts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import Unconvertible, items, obj, text
from secretsync.convert.read import Document
from secretsync.convert.report import ObjectReport

PUSH_ONLY = frozenset({"secretsManager", "checkAndSet"})  # settings of ESO's PushSecret

# The annotations of the ServiceAccounts read from a cluster, by (namespace, name); a
# ServiceAccount missing here was not found. None (files): nothing is known about them.
ServiceAccounts = Mapping[tuple[str, str], Mapping[str, str]]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StoreContext:
    """One ESO store being converted, and where its findings go."""

    doc: Document
    report: ObjectReport
    aws_endpoint: str | None
    service_accounts: ServiceAccounts | None

    @property
    def cluster(self) -> bool:
        return self.doc.kind == "ClusterSecretStore"

    def fail(self, path: str, reason: str) -> Unconvertible:
        """Drop the whole store (the caller raises what this returns)."""
        self.report.drop(path, reason)
        return Unconvertible()


def push_only(ctx: StoreContext, provider: Mapping[str, Any], path: str) -> None:
    for key in sorted(PUSH_ONLY & set(provider)):
        ctx.report.note(f"{path}.{key}", "ignored: it applies to PushSecret only")


def audiences(ref: Mapping[str, Any], field: str = "audiences") -> list[str]:
    return [str(a) for a in items(ref.get(field)) if a]


def namespace_of(ctx: StoreContext, ref: Mapping[str, Any], path: str) -> str | None:
    """A reference's namespace as secretsync takes it (None: the default one)."""
    ns = text(ref.get("namespace"))
    if ns is None:
        return None
    if ctx.cluster:
        return ns
    if ns == ctx.doc.namespace:
        return None  # a SecretStore always reads its own namespace
    raise ctx.fail(
        f"{path}.namespace",
        "a SecretStore may not read from another namespace in secretsync",
    )


def secret_key(ctx: StoreContext, ref: Any, path: str) -> dict[str, Any]:
    ref = obj(ref)
    name, key = text(ref.get("name")), text(ref.get("key"))
    if name is None or key is None:
        raise ctx.fail(path, "needs both name and key")
    out: dict[str, Any] = {"name": name, "key": key}
    ns = namespace_of(ctx, ref, path)
    if ns is not None:
        out["namespace"] = ns
    return out


def service_account(ctx: StoreContext, ref: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The ServiceAccount's name; the callers set audiences (each provider's own way)."""
    name = text(ref.get("name"))
    if name is None:
        raise ctx.fail(f"{path}.name", "a ServiceAccount reference needs a name")
    out: dict[str, Any] = {"name": name}
    ns = text(ref.get("namespace"))
    if ns is not None and (ctx.cluster or ns != ctx.doc.namespace):
        ctx.report.lose(
            f"{path}.namespace",
            "dropped: secretsync always resolves the ServiceAccount in the namespace "
            "being synced, so that each namespace authenticates as itself",
        )
    return out
