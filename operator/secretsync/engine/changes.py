"""Cheap change detection between refreshes: ask the provider for current version ids
(Secrets Manager ListSecrets, SSM GetParameters without decryption, Vault KV v2
metadata) and compare them with status.syncedVersions; only SecretSyncs whose versions
moved are synced, and only their values are then read."""

from __future__ import annotations

from collections.abc import Sequence

from secretsync.models.remote import RemoteRef
from secretsync.models.sync import SecretSyncSpec


def watched_refs(spec: SecretSyncSpec) -> list[RemoteRef]:
    """The refs whose version can move: current versions of data and extract keys (a
    pinned version never changes; find results are left to the refresh timer)."""
    refs = [RemoteRef(d.remote_ref.key) for d in spec.data if d.remote_ref.version is None]
    refs += [
        RemoteRef(df.extract.key) for df in spec.data_from if df.extract and not df.extract.version
    ]
    return refs


def moved(
    refs: Sequence[RemoteRef], synced: dict[str, str] | None, current: dict[RemoteRef, str]
) -> bool:
    """Whether any ref's current version differs from the synced one. A version the
    provider would not tell (missing, denied) counts as unmoved: the refresh timer covers
    it, rather than a full read at every check."""
    synced = synced or {}
    return any(ref in current and current[ref] != synced.get(ref.key) for ref in refs)
