"""Leases and the namespace list: what sharding asks of the API (mixed into `Kube`)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """A coordination.k8s.io/v1 Lease as listed."""

    name: str
    holder: str  # "" when released
    duration: float  # leaseDurationSeconds
    renewed: str  # renewTime as the holder wrote it: compared, never trusted as a clock
    version: str  # resourceVersion, for optimistic updates
    acquired: str | None = None  # acquireTime, kept as written
    transitions: int = 0  # leaseTransitions
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _micro_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(raw: Any) -> LeaseRecord:
    spec = raw.spec
    renewed = spec.renew_time
    return LeaseRecord(
        name=str(raw.metadata.name),
        holder=str(spec.holder_identity or ""),
        duration=float(spec.lease_duration_seconds or 0),
        renewed=renewed.isoformat() if isinstance(renewed, datetime.datetime) else str(renewed),
        version=str(raw.metadata.resource_version),
        acquired=_micro_time(spec.acquire_time) if spec.acquire_time else None,
        transitions=int(spec.lease_transitions or 0),
        labels=dict(raw.metadata.labels or {}),
    )


class LeaseApi:
    """The Lease calls. `Kube` provides `_call_lease`, `_coordination` and `_core`."""

    _coordination: Any
    _core: Any

    async def _call_lease(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError  # pragma: no cover - Kube's

    async def list_leases(self, namespace: str, *, label_selector: str) -> list[LeaseRecord]:
        raw: Any = await self._call_lease(
            f"list Leases in {namespace}",
            self._coordination.list_namespaced_lease,
            namespace,
            label_selector=label_selector,
        )
        return [_record(item) for item in raw.items]

    async def write_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration: int,
        labels: Mapping[str, str],
        previous: LeaseRecord | None,
    ) -> LeaseRecord:
        """Create the Lease (no previous record) or replace it on the condition that it is
        still as `previous` (KubeConflictError otherwise: another replica wrote first)."""
        now = _micro_time(datetime.datetime.now(datetime.UTC))
        handed = previous is None or previous.holder != holder
        spec: dict[str, Any] = {
            "holderIdentity": holder or None,
            "leaseDurationSeconds": duration,
            "renewTime": now,
            "acquireTime": now if handed or previous is None else previous.acquired,
            "leaseTransitions": (
                0
                if previous is None
                else previous.transitions + (1 if handed and previous.holder and holder else 0)
            ),
        }
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta}
        if previous is None:
            raw: Any = await self._call_lease(
                f"create Lease {namespace}/{name}",
                self._coordination.create_namespaced_lease,
                namespace,
                {**body, "spec": spec},
            )
            return _record(raw)
        meta["resourceVersion"] = previous.version
        raw = await self._call_lease(
            f"update Lease {namespace}/{name}",
            self._coordination.replace_namespaced_lease,
            name,
            namespace,
            {**body, "spec": spec},
        )
        return _record(raw)

    async def delete_lease(self, namespace: str, name: str) -> None:
        await self._call_lease(
            f"delete Lease {namespace}/{name}",
            self._coordination.delete_namespaced_lease,
            name,
            namespace,
        )

    async def namespace_names(self) -> set[str]:
        """Every namespace's name (sharding spreads them over the replicas)."""
        raw: Any = await self._call_lease(
            "list Namespaces", self._core.list_namespace, resource_version="0"
        )
        return {
            str(item.metadata.name) for item in raw.items if not item.metadata.deletion_timestamp
        }
