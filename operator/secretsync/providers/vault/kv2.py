"""KV v2: versioned secrets, read at <mount>/data/<key>, described at <mount>/metadata/<key>."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from secretsync.errors import (
    AccessDeniedError,
    ProviderConfigError,
    ProviderError,
    SecretNotFoundError,
)
from secretsync.models import timestamps
from secretsync.models.remote import RemoteRef, RemoteValue
from secretsync.providers.base import RemoteMetadata
from secretsync.providers.vault.kv import KvClient, check_key, data_of, encode, gather_bounded
from secretsync.providers.vault.transport import field_int


def requested_version(ref: RemoteRef) -> int | None:
    """remoteRef.version as a KV v2 version number (None: the current one)."""
    if ref.version is None:
        return None
    if not ref.version.isdigit() or int(ref.version) < 1:
        raise ProviderConfigError(
            f"vault: remoteRef.version of {ref.key!r} must be a KV v2 version number (1, 2, ...)"
        )
    return int(ref.version)


def is_live(entry: object) -> bool:
    """Whether a metadata `versions` entry still holds a value.

    deletion_time is also set ahead of time by delete_version_after, so only
    a deletion time in the past means deleted.
    """
    if not isinstance(entry, Mapping) or entry.get("destroyed") is True:
        return False
    deletion = entry.get("deletion_time")
    if not deletion or not isinstance(deletion, str):
        return True
    try:
        when = datetime.datetime.fromisoformat(deletion)
    except ValueError:
        return False
    return when > datetime.datetime.now(datetime.UTC)


class KvV2Client(KvClient):
    """Reads a KV v2 mount; versions come from the metadata endpoint, never the data."""

    kv_version = "2"

    def _list_path(self, folder: str) -> str:
        return f"{self._mount}/metadata/{folder}"

    async def _read(self, ref: RemoteRef) -> RemoteValue:
        key = check_key(ref.key)
        version = requested_version(ref)
        params = {"version": str(version)} if version is not None else None
        # A deleted or destroyed version answers 404 (SecretNotFoundError in
        # the transport); a 200 without data is treated the same way.
        path = f"{self._mount}/data/{key}"
        try:
            body = data_of(await self._transport.get("kv.read", path, params=params))
        except SecretNotFoundError:
            if version is None:
                raise
            raise SecretNotFoundError(
                f"vault: {path}: version {version} does not exist or is deleted or destroyed"
            ) from None
        metadata = body.get("metadata")
        if not isinstance(metadata, Mapping):
            raise SecretNotFoundError(f"vault: {path} has no metadata")
        value = encode(body.get("data"), key=path)
        return RemoteValue(value=value, version=str(field_int(metadata, "version")))

    async def _version(self, ref: RemoteRef) -> str:
        key = check_key(ref.key)
        wanted = requested_version(ref)
        path = f"{self._mount}/metadata/{key}"
        metadata = data_of(await self._transport.get("kv.metadata", path))
        number = wanted or field_int(metadata, "current_version", 0)
        entries = metadata.get("versions")
        entry = entries.get(str(number)) if isinstance(entries, Mapping) else None
        if number < 1 or not is_live(entry):
            raise SecretNotFoundError(f"vault: {path}: version {number} is deleted or missing")
        return str(number)

    async def metadata(self, ref: RemoteRef) -> RemoteMetadata:
        """The metadata endpoint: when the current version was written. KV has no
        rotation setting of its own."""
        path = f"{self._mount}/metadata/{check_key(ref.key)}"
        metadata = data_of(await self._transport.get("kv.metadata", path))
        entries = metadata.get("versions")
        number = field_int(metadata, "current_version", 0)
        entry = entries.get(str(number)) if isinstance(entries, Mapping) else None
        if not isinstance(entry, Mapping) or not is_live(entry):
            raise SecretNotFoundError(f"vault: {path}: no live current version")
        created = entry.get("created_time")
        when = timestamps.epoch(created) if isinstance(created, str) else None
        return RemoteMetadata(rotation_enabled=None, last_changed=when)

    async def _versions(self, refs: Sequence[RemoteRef]) -> list[str | ProviderError]:
        return await gather_bounded(self._version, refs)

    async def _live(self, keys: list[str]) -> list[str]:
        """Drop listed keys whose current version is deleted: KV v2 keeps listing them."""
        checks = await gather_bounded(self._version, [RemoteRef(key=k) for k in keys])
        live: list[str] = []
        for key, check in zip(keys, checks, strict=True):
            if isinstance(check, SecretNotFoundError):
                continue
            if isinstance(check, ProviderError) and not isinstance(check, AccessDeniedError):
                raise check
            # Denied metadata proves nothing about the value: keep the key and
            # let the fetch report what it finds.
            live.append(key)
        return live
