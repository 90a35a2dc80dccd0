"""KV v1: unversioned secrets at <mount>/<key>.

KV v1 keeps no versions, so every value is reported as version "unversioned"
(never a digest of the value: that would put a function of the secret in the
status). The cheap change check can then only notice that a key disappeared;
changed values reach the cluster on the refresh timer.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Sequence

from secretsync.errors import (
    AccessDeniedError,
    ProviderConfigError,
    ProviderError,
    SecretNotFoundError,
)
from secretsync.models.remote import RemoteRef, RemoteValue
from secretsync.providers.vault.kv import KvClient, check_key, encode, gather_bounded

UNVERSIONED = "unversioned"


def _unversioned(ref: RemoteRef) -> str:
    """The ref's key below the mount; a pinned version is a configuration error."""
    if ref.version is not None:
        raise ProviderConfigError(
            f"vault: remoteRef.version is set for {ref.key!r}, but a KV v1 mount keeps no "
            "versions; remove it or use a KV v2 mount"
        )
    return check_key(ref.key)


class KvV1Client(KvClient):
    """Reads a KV v1 mount."""

    kv_version = "1"

    def _list_path(self, folder: str) -> str:
        return f"{self._mount}/{folder}"

    async def _read(self, ref: RemoteRef) -> RemoteValue:
        key = _unversioned(ref)
        body = await self._transport.get("kv.read", f"{self._mount}/{key}")
        value = encode(body.get("data"), key=f"{self._mount}/{key}")
        return RemoteValue(value=value, version=UNVERSIONED)

    async def _versions(self, refs: Sequence[RemoteRef]) -> list[str | ProviderError]:
        """Existence from one LIST per parent folder, so no value is read.

        A policy that allows read but not list falls back to reading each key
        of that folder (the value is dropped at once).
        """
        results: list[str | ProviderError] = [UNVERSIONED] * len(refs)
        folders: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        for index, ref in enumerate(refs):
            try:
                key = _unversioned(ref)
            except ProviderConfigError as exc:
                results[index] = exc
                continue
            folders[posixpath.dirname(key)].append((index, key))
        names = list(folders)
        listings = await gather_bounded(self._list, names)
        unlisted: list[tuple[int, str]] = []
        for folder, listing in zip(names, listings, strict=True):
            for index, key in folders[folder]:
                if isinstance(listing, AccessDeniedError):
                    unlisted.append((index, key))
                elif isinstance(listing, SecretNotFoundError) or (
                    isinstance(listing, list) and key not in listing
                ):
                    results[index] = SecretNotFoundError(f"vault: {self._mount}/{key}: not found")
                elif isinstance(listing, ProviderError):
                    results[index] = listing
        reads = await gather_bounded(self._read, [RemoteRef(key=key) for _, key in unlisted])
        for (index, _), read in zip(unlisted, reads, strict=True):
            results[index] = read if isinstance(read, ProviderError) else UNVERSIONED
        return results
