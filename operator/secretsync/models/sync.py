"""The SecretSync spec (see crds/ for the field documentation): compact dataclasses
(models/base.py), since a process keeps one per SecretSync."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from secretsync.models import duration
from secretsync.models.base import Interned, Parser, compact

StoreKind = Literal["SecretStore", "ClusterSecretStore"]
DEFAULT_REFRESH = "1h"


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StoreRef:
    name: Interned
    kind: StoreKind = "SecretStore"


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RemoteRefSpec:
    key: Interned
    property: Interned | None = None
    version: Interned | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DataItem:
    secret_key: Interned
    remote_ref: RemoteRefSpec


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Extract:
    key: Interned
    property: Interned | None = None
    version: Interned | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NameMatch:
    regexp: str


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Find:
    path: str | None = None
    name: NameMatch | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DataFromItem:
    extract: Extract | None = None
    find: Find | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    data: dict[str, str] = dataclasses.field(default_factory=dict)


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    name: str | None = None
    type: str = "Opaque"
    creation_policy: Literal["Owner", "Orphan", "Merge"] = "Owner"
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    immutable: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    template: Template | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"]
    name: str


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    restart: tuple[Workload, ...] = ()


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Dynamic:
    """Credentials from a Vault secrets engine that answers with a lease."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A certificate issued by a Vault PKI mount, written as a kubernetes.io/tls Secret."""

    mount: str = "pki"
    role: str
    common_name: str
    alt_names: tuple[str, ...] = ()
    ip_sans: tuple[str, ...] = ()
    uri_sans: tuple[str, ...] = ()
    ttl: str | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeasePolicy:
    """How an issued credential is kept: renewed, re-issued, revoked."""

    renew_percent: int = 67
    revoke_grace_period: str = "2m"
    revoke_on_delete: bool = True

    @property
    def grace_seconds(self) -> float:
        return duration.parse(self.revoke_grace_period, field="spec.lease.revokeGracePeriod")


TLS_TYPE = "kubernetes.io/tls"
_NO_TARGET = Target()
_DEFAULT_LEASE = LeasePolicy()
_NO_ROLLOUT = Rollout()


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecretSyncSpec:
    store_ref: StoreRef
    refresh_interval: Interned = DEFAULT_REFRESH
    # Shared defaults: most SecretSyncs set neither (frozen, so sharing is safe). A
    # factory, because pydantic deep-copies a default it cannot hash (Target's dicts).
    target: Target = dataclasses.field(default_factory=lambda: _NO_TARGET)
    data: tuple[DataItem, ...] = ()
    data_from: tuple[DataFromItem, ...] = ()
    rollout: Rollout = dataclasses.field(default_factory=lambda: _NO_ROLLOUT)
    dynamic: Dynamic | None = None
    certificate: Certificate | None = None
    lease: LeasePolicy = dataclasses.field(default_factory=lambda: _DEFAULT_LEASE)

    @property
    def issued(self) -> bool:
        """Whether the data is issued by Vault under a lease (dynamic or certificate)
        rather than read (docs/design/0010-leases.md)."""
        return self.dynamic is not None or self.certificate is not None

    @property
    def effective_target(self) -> Target:
        """The target; a certificate's Secret is of type kubernetes.io/tls."""
        if self.certificate is not None and self.target.type == "Opaque":
            return dataclasses.replace(self.target, type=TLS_TYPE)
        return self.target

    @property
    def refresh_seconds(self) -> float:
        """Seconds between refreshes; 0 means sync once."""
        return duration.parse(self.refresh_interval, field="spec.refreshInterval")


_SPEC = Parser(SecretSyncSpec)


def parse_spec(raw: Any) -> SecretSyncSpec:
    """A SecretSync's spec (raises pydantic.ValidationError)."""
    return _SPEC.parse(raw)
