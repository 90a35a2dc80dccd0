"""Writing the target Secret: only when its content would change, honouring the
creation policy, never touching a Secret this SecretSync does not manage."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from secretsync.engine.secretcache import SecretState
from secretsync.errors import ConfigError, KubeConflictError, KubeError
from secretsync.kube import Kube, Owner, SecretObject
from secretsync.models.sync import Target

MANAGED_BY = ("app.kubernetes.io/managed-by", "secretsync")
OWNER_ANNOTATION = "secretsync.io/secretsync"  # on Secrets the SecretSync manages whole
# On someone else's Secret that a Merge SecretSync writes keys into. Distinct from the
# above, so that switching the policy from Merge never makes that Secret "ours".
MERGE_ANNOTATION = "secretsync.io/merged-by"

# On a SecretSync: it may take over the Secret an External Secrets Operator
# ExternalSecret of the same name controls (`secretsync convert` sets it): the move from
# ESO without a moment without the Secret (docs/convert.md).
ADOPT_ANNOTATION = "secretsync.io/adopt"
ADOPT_ESO = "external-secrets.io/ExternalSecret"
ESO_GROUP = "external-secrets.io"

WriteOutcome = Literal["created", "updated", "unchanged", "adopted", "deleted"]
CONFLICT_RETRIES = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncTarget:
    """The SecretSync a write is for."""

    namespace: str
    name: str  # the SecretSync's name
    uid: str
    target: Target
    adopt: bool = False  # the SecretSync's ADOPT_ANNOTATION names ADOPT_ESO

    @property
    def secret_name(self) -> str:
        return self.target.name or self.name


def _labels(t: SyncTarget) -> dict[str, str]:
    return {**t.target.labels, MANAGED_BY[0]: MANAGED_BY[1]}


def _annotations(t: SyncTarget) -> dict[str, str]:
    return {**t.target.annotations, OWNER_ANNOTATION: t.name}


def _ours(t: SyncTarget, secret: SecretObject) -> bool:
    """Managed whole by this SecretSync: our label, and our ownerReference or annotation."""
    labelled = secret.labels.get(MANAGED_BY[0]) == MANAGED_BY[1]
    named = t.uid in secret.owner_uids or secret.annotations.get(OWNER_ANNOTATION) == t.name
    return labelled and named


def _owner(t: SyncTarget) -> Owner | None:
    return Owner(name=t.name, uid=t.uid) if t.target.creation_policy == "Owner" else None


def _holds(t: SyncTarget, known: SecretState, data_hash: str) -> bool:
    """Whether the Secret, as last watched, is what this write would make it (a stale
    answer is corrected by the watch event that follows: it is drift, and repaired)."""
    owner = _owner(t)
    return (
        known.data_hash == data_hash
        and known.type == t.target.type
        and known.immutable == t.target.immutable
        and known.owned_by((owner.uid,) if owner else ())
        and known.covers(labels=_labels(t), annotations=_annotations(t))
    )


def _covers(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


async def write(
    kube: Kube,
    t: SyncTarget,
    data: Mapping[str, bytes],
    data_hash: str,
    *,
    known: SecretState | None = None,
) -> WriteOutcome:
    """Make the target Secret hold the data; no API call at all when the watch's last word
    on it (`known`) says it already does, and no write when a read says so. Writes are
    conditional on what was read: when another writer got in between (409), read again
    and decide again, a few times, rather than fail the round."""
    if known is not None and t.target.creation_policy != "Merge" and _holds(t, known, data_hash):
        return "unchanged"
    for _ in range(CONFLICT_RETRIES):
        try:
            return await _write_once(kube, t, data)
        except KubeConflictError:
            continue
    return await _write_once(kube, t, data)


async def _write_once(kube: Kube, t: SyncTarget, data: Mapping[str, bytes]) -> WriteOutcome:
    existing = await kube.get_secret(t.namespace, t.secret_name)
    policy = t.target.creation_policy
    if policy == "Merge":
        return await _merge(kube, t, existing, data)
    if existing is None:
        await _create(kube, t, data)
        return "created"
    if not _ours(t, existing) and _adoptable(t, existing):
        await _replace(kube, t, existing, data)  # in place: never a moment without it
        return "adopted"
    if not _ours(t, existing):
        raise ConfigError(
            f"spec.target.name: Secret {t.namespace}/{t.secret_name} already exists and is not "
            "managed by this SecretSync; choose another name, or creationPolicy Merge to "
            "write into it"
        )
    if existing.type != t.target.type:
        # Never delete good data to change a type: the user decides when to recreate.
        raise ConfigError(
            f"spec.target.type: Secret {t.namespace}/{t.secret_name} has type {existing.type!r}, "
            f"not {t.target.type!r}, and a Secret's type cannot change; delete the Secret to "
            "let it be recreated with the new type"
        )
    owner = _owner(t)
    same = (
        dict(existing.data) == dict(data)
        and existing.immutable == t.target.immutable
        and existing.owner_uids == ((owner.uid,) if owner else ())
        and _covers(existing.labels, _labels(t))
        and _covers(existing.annotations, _annotations(t))
    )
    if same:
        return "unchanged"
    if existing.immutable or t.target.immutable:
        # Immutability cannot change, nor can an immutable Secret's data: replace it.
        await kube.delete_secret(t.namespace, t.secret_name)
        try:
            await _create(kube, t, data)
        except KubeError:
            await _create(kube, t, data)  # once more: the Secret is missing until it works
        return "updated"
    await _replace(kube, t, existing, data)
    return "updated"


def _adoptable(t: SyncTarget, existing: SecretObject) -> bool:
    """A Secret an ExternalSecret of this SecretSync's name controls, when the SecretSync
    asks to take it over; its type must be the one asked for."""
    if not t.adopt or existing.controller is None or existing.type != t.target.type:
        return False
    api_version, kind, name = existing.controller
    return api_version.split("/")[0] == ESO_GROUP and kind == "ExternalSecret" and name == t.name


async def _replace(
    kube: Kube, t: SyncTarget, existing: SecretObject, data: Mapping[str, bytes]
) -> None:
    """One conditional patch that makes the Secret ours whole: exactly our data, our labels,
    annotations and ownerReference (an adopted Secret's ExternalSecret ownerReference goes,
    so deleting the ExternalSecret later no longer deletes the Secret)."""
    removed: dict[str, bytes | None] = {k: None for k in existing.data if k not in data}
    await kube.patch_secret(
        namespace=t.namespace,
        name=t.secret_name,
        data={**removed, **data},
        labels=_labels(t),
        annotations=_annotations(t),
        resource_version=existing.resource_version,
        owner=_owner(t),
    )


async def _create(kube: Kube, t: SyncTarget, data: Mapping[str, bytes]) -> None:
    owner = _owner(t)
    await kube.create_secret(
        namespace=t.namespace,
        name=t.secret_name,
        type_=t.target.type,
        data=data,
        labels=_labels(t),
        annotations=_annotations(t),
        owner=owner,
        immutable=t.target.immutable,
    )


async def _merge(
    kube: Kube, t: SyncTarget, existing: SecretObject | None, data: Mapping[str, bytes]
) -> WriteOutcome:
    if existing is None:
        raise ConfigError(
            f"spec.target.creationPolicy: Merge writes into an existing Secret, and "
            f"{t.namespace}/{t.secret_name} does not exist"
        )
    if all(existing.data.get(k) == v for k, v in data.items()) and _covers(
        existing.annotations, {MERGE_ANNOTATION: t.name}
    ):
        return "unchanged"
    # Only our keys are written; every other key of the Secret is left as it is.
    await kube.patch_secret(
        namespace=t.namespace,
        name=t.secret_name,
        data=dict(data),
        labels=existing.labels,
        annotations={**existing.annotations, MERGE_ANNOTATION: t.name},
        resource_version=existing.resource_version,
    )
    return "updated"


async def remove(kube: Kube, t: SyncTarget, keys: set[str]) -> WriteOutcome:
    """deletionPolicy Delete after the remote secret is gone: delete our Secret (or, for
    Merge, only our keys). A Secret we do not manage is never touched."""
    existing = await kube.get_secret(t.namespace, t.secret_name)
    if existing is None:
        return "unchanged"
    if t.target.creation_policy != "Merge":
        if not _ours(t, existing):
            return "unchanged"
        await kube.delete_secret(t.namespace, t.secret_name)
        return "deleted"
    present = keys & set(existing.data)
    if not present:
        return "unchanged"
    await kube.patch_secret(
        namespace=t.namespace,
        name=t.secret_name,
        data=dict.fromkeys(present),
        labels=existing.labels,
        annotations=existing.annotations,
        resource_version=existing.resource_version,
    )
    return "deleted"
