"""SS006: remote secrets that do not rotate, asked of each provider as each store's own
identity (the identity a SecretSync of that namespace syncs with), metadata only:
DescribeSecret, DescribeParameters, KV v2 metadata. No value is read."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

from secretsync.auth.plan import LoginPlan, plan_login
from secretsync.engine.login import login_material
from secretsync.engine.stores import StoreEntry
from secretsync.errors import ProviderError, SecretSyncError
from secretsync.kube import Kube
from secretsync.models.remote import ObservingGate, RemoteRef
from secretsync.models.store import StoreSpec
from secretsync.providers import registry
from secretsync.providers.base import MetadataReader, RemoteMetadata
from secretsync.scan.model import NOT_ROTATED, Finding, Note
from secretsync.scan.secretsyncs import RemoteUse, SyncView, remote_uses


@dataclasses.dataclass(frozen=True, kw_only=True)
class RotationResult:
    findings: list[Finding]
    notes: list[Note]


async def check(
    kube: Kube, syncs: Sequence[SyncView], *, max_age: float, now: float
) -> RotationResult:
    """Findings for every named remote key whose rotation is off or whose current value
    is older than max_age seconds; a note for every identity or key it could not ask."""
    groups: dict[tuple[str, str], list[RemoteUse]] = collections.defaultdict(list)
    store_of: dict[str, tuple[StoreEntry, StoreSpec]] = {}
    for sync in syncs:
        if sync.store is None or sync.store.spec is None or sync.spec is None:
            continue
        store_of[sync.store.key] = (sync.store, sync.store.spec)
        for use in remote_uses(sync):
            groups[(sync.store.key, sync.namespace)].append(use)
    findings: list[Finding] = []
    notes: list[Note] = []
    for (store_key, namespace), uses in sorted(groups.items()):
        store, spec = store_of[store_key]
        try:
            plan = plan_login(
                spec, store_namespace=store.namespace or None, sync_namespace=namespace
            )
            if not plan.service_account and not plan.secrets:
                # Ambient: the operator's own identity (its Pod's); the audit has another.
                reason = "no auth: it logs in as the operator itself, which the audit cannot"
                notes.append(Note(check=NOT_ROTATED.id, where=store_key, reason=reason))
                continue
            described = await _describe(kube, spec, plan, uses)
        except (SecretSyncError, ValueError) as exc:
            notes.append(_note(f"{store_key} as namespace {namespace}", exc))
            continue
        for use, answer in zip(uses, described, strict=True):
            if isinstance(answer, ProviderError):
                notes.append(_note(f"{use.sync.ref} {use.field} ({use.key})", answer))
            elif why := _stale(answer, max_age=max_age, now=now):
                findings.append(
                    Finding(
                        check=NOT_ROTATED.id,
                        ref=use.sync.ref,
                        field=use.field,
                        evidence=f"{use.key}: {why}",
                    )
                )
    return RotationResult(findings=findings, notes=notes)


async def _describe(
    kube: Kube, spec: StoreSpec, plan: LoginPlan, uses: Sequence[RemoteUse]
) -> list[RemoteMetadata | ProviderError]:
    """Log in once as the group's identity and describe each key."""
    backend = registry.backend_for(spec.provider)
    session = await backend.login(await login_material(kube, plan))
    client = backend.client(session, ObservingGate(lambda _operation, _outcome: None))
    try:
        if not isinstance(client, MetadataReader):
            raise ProviderError(f"{backend.name}: this store's secrets keep no dates to check")
        answers: list[RemoteMetadata | ProviderError] = []
        for use in uses:
            try:
                answers.append(await client.metadata(RemoteRef(key=use.key)))
            except ProviderError as exc:
                answers.append(exc)
        return answers
    finally:
        await client.close()


def _stale(meta: RemoteMetadata, *, max_age: float, now: float) -> str | None:
    if meta.rotation_enabled is False:
        return "rotation is off"
    if meta.last_changed is not None and now - meta.last_changed > max_age:
        days = (now - meta.last_changed) / 86400
        return f"current value is {days:.1f} days old"
    return None


def _note(where: str, exc: Exception) -> Note:
    # The operator's errors name objects and operations, never values.
    return Note(check=NOT_ROTATED.id, where=where, reason=str(exc) or type(exc).__name__)
