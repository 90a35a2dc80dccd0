"""The checks over secretsync's own objects: SS005 (one remote secret in several
environments), SS007 (stores with static or ambient credentials) and SS008 (SecretSyncs
failing for too long). Pure: they read the listed objects only."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pydantic

from secretsync.engine.stores import StoreEntry, parse_store
from secretsync.models import status as status_model
from secretsync.models import timestamps
from secretsync.models.store import StoreSpec
from secretsync.models.sync import SecretSyncSpec, parse_spec
from secretsync.scan.model import (
    FAILING_SYNC,
    NOT_ROTATED,
    SHARED_ACROSS_ENVIRONMENTS,
    STATIC_CREDENTIALS,
    Finding,
    Note,
    ObjectRef,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncView:
    """A SecretSync as the audit sees it: its spec (None if unreadable) and store."""

    ref: ObjectRef
    spec: SecretSyncSpec | None
    status: status_model.Status
    store: StoreEntry | None

    @property
    def namespace(self) -> str:
        return self.ref.namespace or ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteUse:
    """One remote key a SecretSync reads, and where in its spec."""

    sync: SyncView
    key: str
    field: str


def views(syncs: Sequence[Mapping[str, Any]], stores: Sequence[StoreEntry]) -> list[SyncView]:
    """Each SecretSync with its parsed spec and the store it names."""
    by_key = {(s.kind, s.namespace, s.name): s for s in stores}
    out = []
    for body in syncs:
        meta = body.get("metadata") or {}
        namespace = meta.get("namespace", "")
        try:
            spec: SecretSyncSpec | None = parse_spec(body.get("spec") or {})
        except (pydantic.ValidationError, ValueError):
            spec = None
        store = None
        if spec is not None:
            store_ns = namespace if spec.store_ref.kind == "SecretStore" else ""
            store = by_key.get((spec.store_ref.kind, store_ns, spec.store_ref.name))
        out.append(
            SyncView(
                ref=ObjectRef(kind="SecretSync", namespace=namespace, name=meta.get("name", "")),
                spec=spec,
                status=status_model.parse(body.get("status")),
                store=store,
            )
        )
    return out


def stores_of(
    namespaced: Sequence[Mapping[str, Any]], cluster: Sequence[Mapping[str, Any]]
) -> list[StoreEntry]:
    return [parse_store("SecretStore", b) for b in namespaced] + [
        parse_store("ClusterSecretStore", b) for b in cluster
    ]


def unchecked(syncs: Sequence[SyncView], stores: Sequence[StoreEntry]) -> Iterator[Note]:
    """What SS005 to SS007 cannot see: unreadable specs, missing stores, keys a `find`
    query chooses at sync time."""
    remote = (SHARED_ACROSS_ENVIRONMENTS.id, NOT_ROTATED.id)
    for store in stores:
        if store.spec is None:
            where = store.key
            yield Note(check=STATIC_CREDENTIALS.id, where=where, reason="its spec is unreadable")
    for sync in syncs:
        where = str(sync.ref)
        if sync.spec is None:
            reason = "its spec is unreadable"
        elif sync.store is None or sync.store.spec is None:
            reason = f"its store {sync.spec.store_ref.kind} {sync.spec.store_ref.name} is missing"
        elif any(source.find is not None for source in sync.spec.data_from):
            reason = "dataFrom.find: the remote keys are chosen at sync time"
        else:
            continue
        yield from (Note(check=check, where=where, reason=reason) for check in remote)


def remote_uses(sync: SyncView) -> Iterator[RemoteUse]:
    """The remote keys a SecretSync reads by name (`find` queries and issued credentials
    name none)."""
    if sync.spec is None:
        return
    for index, item in enumerate(sync.spec.data):
        yield RemoteUse(
            sync=sync, key=item.remote_ref.key, field=f"spec.data[{index}].remoteRef.key"
        )
    for index, source in enumerate(sync.spec.data_from):
        if source.extract is not None:
            yield RemoteUse(
                sync=sync, key=source.extract.key, field=f"spec.dataFrom[{index}].extract.key"
            )


def remote_scope(store: StoreEntry, spec: StoreSpec) -> str:
    """Where a key names one secret: the same key in another account, region, server or
    mount is another secret. The account is the last role's of the chain; a store that
    assumes no role (static keys, ambient) is its own scope, its account being unknown."""
    aws, vault = spec.provider.aws, spec.provider.vault
    if aws is not None:
        chain = [r for r in (aws.role, *aws.additional_roles) if r]
        arn = chain[-1].split(":") if chain else []
        account = arn[4] if len(arn) >= 6 and arn[4] else f"of {store.key}"
        endpoint = f" {aws.endpoint}" if aws.endpoint else ""
        return f"aws {aws.service} {aws.region} account {account}{endpoint}"
    if vault is not None:
        namespace = f" namespace {vault.namespace}" if vault.namespace else ""
        return f"vault {vault.server}{namespace} mount {vault.path}"
    return "unknown"


def shared_across_environments(
    syncs: Sequence[SyncView], labels: Mapping[str, Mapping[str, str]], env_label: str
) -> Iterator[Finding]:
    """SS005: every use of a remote secret that namespaces of two or more environments
    read. Namespaces without the label have no known environment and are left out."""
    users: dict[tuple[str, str], list[tuple[RemoteUse, str]]] = collections.defaultdict(list)
    for sync in syncs:
        if sync.store is None or sync.store.spec is None:
            continue
        environment = labels.get(sync.namespace, {}).get(env_label)
        if not environment:
            continue
        for use in remote_uses(sync):
            users[(remote_scope(sync.store, sync.store.spec), use.key)].append((use, environment))
    for (scope, key), uses in sorted(users.items()):
        environments = sorted({env for _, env in uses})
        if len(environments) < 2:
            continue
        for use, environment in uses:
            others = sorted(
                {f"{u.sync.namespace} ({env})" for u, env in uses if env != environment}
            )
            yield Finding(
                check=SHARED_ACROSS_ENVIRONMENTS.id,
                ref=use.sync.ref,
                field=use.field,
                evidence=f"{key} at {scope}, {env_label}={environment}, is also synced into "
                + ", ".join(others),
            )


def static_credentials(stores: Sequence[StoreEntry]) -> Iterator[Finding]:
    """SS007: stores that log in with long-lived material or the operator's identity."""
    for store in stores:
        if store.spec is None:
            continue
        ref = ObjectRef(kind=store.kind, namespace=store.namespace or None, name=store.name)
        for field, why in _static_logins(store.spec):
            yield Finding(check=STATIC_CREDENTIALS.id, ref=ref, field=field, evidence=why)


def _static_logins(spec: StoreSpec) -> Iterator[tuple[str, str]]:
    aws, vault = spec.provider.aws, spec.provider.vault
    if aws is not None:
        auth = aws.auth
        if auth is None or (auth.service_account is None and auth.secret_ref is None):
            yield "spec.provider.aws.auth", "no auth: the operator's own (ambient) AWS identity"
        elif auth.secret_ref is not None:
            yield "spec.provider.aws.auth.secretRef", "long-lived access keys from a Secret"
    if vault is not None:
        if vault.auth.token is not None:
            yield "spec.provider.vault.auth.token", "a static Vault token from a Secret"
        elif vault.auth.app_role is not None:
            yield "spec.provider.vault.auth.appRole", "an AppRole secret id kept in a Secret"


def failing(syncs: Sequence[SyncView], *, longer_than: float, now: float) -> Iterator[Finding]:
    """SS008: SecretSyncs whose Ready condition has been False for longer than allowed."""
    for sync in syncs:
        ready = sync.status.ready()
        if ready is None or ready.status != "False" or not ready.last_transition_time:
            continue
        since = timestamps.epoch(ready.last_transition_time)
        if since is None or now - since <= longer_than:
            continue
        yield Finding(
            check=FAILING_SYNC.id,
            ref=sync.ref,
            field="status.conditions[Ready]",
            evidence=f"not Ready for {_duration(now - since)}: {ready.reason}",
        )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
