"""The SecretSync spec (see crds/ for the field documentation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from secretsync.models import duration
from secretsync.models.base import Model

StoreKind = Literal["SecretStore", "ClusterSecretStore"]
DEFAULT_REFRESH = "1h"


class StoreRef(Model):
    name: str
    kind: StoreKind = "SecretStore"


class RemoteRefSpec(Model):
    key: str
    property: str | None = None
    version: str | None = None


class DataItem(Model):
    secret_key: str
    remote_ref: RemoteRefSpec


class Extract(Model):
    key: str
    property: str | None = None
    version: str | None = None


class NameMatch(Model):
    regexp: str


class Find(Model):
    path: str | None = None
    name: NameMatch | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class DataFromItem(Model):
    extract: Extract | None = None
    find: Find | None = None


class Template(Model):
    data: dict[str, str] = Field(default_factory=dict)


class Target(Model):
    name: str | None = None
    type: str = "Opaque"
    creation_policy: Literal["Owner", "Orphan", "Merge"] = "Owner"
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    immutable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    template: Template | None = None


class Workload(Model):
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"]
    name: str


class Rollout(Model):
    restart: tuple[Workload, ...] = ()


class SecretSyncSpec(Model):
    store_ref: StoreRef
    refresh_interval: str = DEFAULT_REFRESH
    target: Target = Field(default_factory=Target)
    data: tuple[DataItem, ...] = ()
    data_from: tuple[DataFromItem, ...] = ()
    rollout: Rollout = Field(default_factory=Rollout)

    @property
    def refresh_seconds(self) -> float:
        """Seconds between refreshes; 0 means sync once."""
        return duration.parse(self.refresh_interval, field="spec.refreshInterval")
