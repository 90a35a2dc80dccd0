"""One audit: list what the checks need (read-only), run every check, apply the
allow-list. A listing the audit may not make becomes a note naming the checks it
skipped, never a silent pass."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from secretsync.errors import KubeError
from secretsync.kube import Kube
from secretsync.kube import inventory as inv
from secretsync.scan import allow, configs, literals, rotation, secretsyncs, workloads
from secretsync.scan.model import (
    FAILING_SYNC,
    HAND_MADE_SECRET,
    LITERAL_IN_CONFIG_MAP,
    LITERAL_IN_WORKLOAD,
    NOT_ROTATED,
    SECRET_IN_ENV,
    SHARED_ACROSS_ENVIRONMENTS,
    STATIC_CREDENTIALS,
    Finding,
    Note,
)
from secretsync.scan.report import Report

WORKLOADS = (
    inv.PODS,
    inv.DEPLOYMENTS,
    inv.STATEFUL_SETS,
    inv.DAEMON_SETS,
    inv.REPLICA_SETS,
    inv.JOBS,
    inv.CRON_JOBS,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    environment_label: str = "environment"
    rotation_max_age: float = 90 * 86400
    failing_for: float = 3600
    remote: bool = True  # SS006 asks the providers
    allowed: tuple[allow.Allowed, ...] = ()


class _Lister:
    """Lists collections in the audited namespaces, noting what it could not list."""

    def __init__(self, kube: Kube, namespaces: Sequence[str]) -> None:
        self.kube, self.namespaces = kube, namespaces
        self.notes: list[Note] = []
        self.scanned: dict[str, int] = {}

    async def items(
        self, collection: inv.Collection, checks: Sequence[str], **kwargs: Any
    ) -> list[dict[str, Any]]:
        scopes: Sequence[str | None] = (
            self.namespaces if self.namespaces and collection.namespaced else [None]
        )
        out: list[dict[str, Any]] = []
        for namespace in scopes:
            try:
                out += await inv.list_all(self.kube, collection, namespace=namespace, **kwargs)
            except KubeError as exc:
                self.notes += [
                    Note(check=c, where=str(namespace or "cluster"), reason=str(exc))
                    for c in checks
                ]
        self.scanned[collection.plural] = self.scanned.get(collection.plural, 0) + len(out)
        return out


async def audit(kube: Kube, options: Options) -> Report:
    lister = _Lister(kube, options.namespaces)
    findings: list[Finding] = []
    with literals.detectors():
        for collection in WORKLOADS:
            for obj in await lister.items(collection, [LITERAL_IN_WORKLOAD.id, SECRET_IN_ENV.id]):
                findings += workloads.check(collection.kind, obj)
        for obj in await lister.items(inv.CONFIG_MAPS, [LITERAL_IN_CONFIG_MAP.id]):
            findings += configs.config_map(obj)
    secrets = await lister.items(
        inv.SECRETS, [HAND_MADE_SECRET.id], field_selector="type=Opaque", metadata_only=True
    )
    for obj in secrets:
        findings += configs.hand_made(obj)

    sync_checks = [SHARED_ACROSS_ENVIRONMENTS.id, NOT_ROTATED.id, FAILING_SYNC.id]
    stores = secretsyncs.stores_of(
        await lister.items(inv.SECRET_STORES, [STATIC_CREDENTIALS.id, *sync_checks]),
        await lister.items(inv.CLUSTER_SECRET_STORES, [STATIC_CREDENTIALS.id, *sync_checks]),
    )
    views = secretsyncs.views(await lister.items(inv.SECRET_SYNCS, sync_checks), stores)
    findings += secretsyncs.static_credentials(stores)
    lister.notes += [
        n
        for n in secretsyncs.unchecked(views, stores)
        if options.remote or n.check != NOT_ROTATED.id  # with --no-remote, SS006 never ran
    ]
    now = time.time()
    findings += secretsyncs.failing(views, longer_than=options.failing_for, now=now)
    labels = await _namespace_labels(kube, lister, options.namespaces)
    findings += secretsyncs.shared_across_environments(views, labels, options.environment_label)
    notes = lister.notes
    if options.remote:
        rotated = await rotation.check(kube, views, max_age=options.rotation_max_age, now=now)
        findings += rotated.findings
        notes += rotated.notes
    kept, covered = allow.split(sorted(set(findings)), options.allowed)
    return Report(
        findings=kept, notes=sorted(set(notes)), allowed=len(covered), scanned=lister.scanned
    )


async def _namespace_labels(
    kube: Kube, lister: _Lister, namespaces: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Every namespace's labels (the environment of SS005): one list, or one get per
    audited namespace when the audit is narrowed to some."""
    if not namespaces:
        listed = await lister.items(inv.NAMESPACES, [SHARED_ACROSS_ENVIRONMENTS.id])
        return {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in listed}
    labels = {}
    for name in namespaces:
        try:
            labels[name] = await kube.namespace_labels(name)
        except KubeError as exc:
            lister.notes.append(
                Note(check=SHARED_ACROSS_ENVIRONMENTS.id, where=name, reason=str(exc))
            )
    return labels
