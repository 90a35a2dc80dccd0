"""The SecretsClient of a Vault KV mount: what KV v1 and v2 share.

Vault has no batch read, so a batch is read concurrently, a bounded number of
calls at a time, each distinct ref once. A value is the secret's data map as
compact, key-sorted JSON, so the same data always gives the same bytes and the
engine can pick properties out of it.

Errors about one ref (not found, denied, a bad version) are that ref's result;
errors about the session or the service (Vault unreachable or throttling, the
token refused) are raised, so the engine backs off or logs in again.
"""

from __future__ import annotations

import abc
import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import ClassVar, TypeVar

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import FindQuery, RemoteRef, RemoteValue
from secretsync.providers.vault.transport import Json, Transport, obj

# Calls in flight per client: enough to hide latency, few enough not to look
# like a flood to Vault's rate-limit quotas (and under requests' pool of 10).
MAX_CONCURRENCY = 8

A = TypeVar("A")
T = TypeVar("T")


async def gather_bounded(
    call: Callable[[A], Awaitable[T]], items: Iterable[A]
) -> list[T | ProviderError]:
    """call(item) for every item, MAX_CONCURRENCY at a time; a ProviderError is a result.

    Once a call finds Vault unavailable, the calls not yet started get that
    error instead of each waiting for their own timeout.
    """
    gate = asyncio.Semaphore(MAX_CONCURRENCY)
    outage: list[ProviderUnavailableError] = []

    async def one(item: A) -> T | ProviderError:
        async with gate:
            if outage:
                return outage[0]
            try:
                return await call(item)
            except ProviderUnavailableError as exc:
                outage.append(exc)
                return exc
            except ProviderError as exc:
                return exc

    return await asyncio.gather(*(one(item) for item in items))


def raise_session_errors(results: Iterable[object]) -> None:
    """Raise the first error that concerns the session or the service, not one ref.

    Vault being unreachable or refusing the token is no property of a key, and
    the engine must see it as such (back off, or log in again).
    """
    for result in results:
        if isinstance(result, ProviderUnavailableError) or (
            isinstance(result, ProviderAuthError) and not isinstance(result, AccessDeniedError)
        ):
            raise result


def check_key(key: str) -> str:
    """A remote key as a Vault path below the mount, or ProviderConfigError.

    "." and ".." segments are refused: requests normalises them away, so a key
    could otherwise read outside the mount the store names.
    """
    path = key.lstrip("/")
    segments = path.split("/")
    if not path or any(s in ("", ".", "..") for s in segments):
        raise ProviderConfigError(
            f"vault: remote key {key!r} is not a secret path (empty, '.' or '..' segment, "
            "or a trailing '/')"
        )
    return path


def encode(data: object, *, key: str) -> bytes:
    """A secret's data map as the bytes the engine receives."""
    if not isinstance(data, Mapping):
        raise SecretNotFoundError(f"vault: {key} holds no data")
    # UTF-8 as is (not \u escapes): a whole map synced into a Secret key stays readable.
    return json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def compile_query(query: FindQuery) -> tuple[str, re.Pattern[str] | None]:
    """The folder to list and the name pattern of a dataFrom.find query."""
    if query.tags:
        raise ProviderConfigError("dataFrom.find.tags is only supported by AWS")
    folder = (query.path or "").strip("/")
    if folder and any(s in ("", ".", "..") for s in folder.split("/")):
        raise ProviderConfigError(f"dataFrom.find.path {query.path!r} is not a folder path")
    try:
        pattern = re.compile(query.name_regexp) if query.name_regexp else None
    except re.error:
        raise ProviderConfigError(
            f"dataFrom.find.name.regexp {query.name_regexp!r} is not a valid regular expression"
        ) from None
    return folder, pattern


class KvClient(abc.ABC):
    """Reads one KV mount as one Vault token; KvV1Client and KvV2Client say how."""

    kv_version: ClassVar[str]  # "1" or "2", as sys/mounts reports it

    def __init__(self, *, transport: Transport, mount: str) -> None:
        self._transport = transport
        self._mount = mount.strip("/")

    # --- what each KV version defines -------------------------------------------------

    @abc.abstractmethod
    async def _read(self, ref: RemoteRef) -> RemoteValue:
        """One ref's value."""

    @abc.abstractmethod
    async def _versions(self, refs: Sequence[RemoteRef]) -> list[str | ProviderError]:
        """Each ref's version, or its error, in order."""

    @abc.abstractmethod
    def _list_path(self, folder: str) -> str:
        """The Vault path that LISTs a folder of the mount."""

    async def _live(self, keys: list[str]) -> list[str]:
        """The found keys that hold a value (KV v2 keeps deleted ones listed)."""
        return keys

    # --- SecretsClient ------------------------------------------------------------------

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        """Every ref's value, or the error about that ref; duplicate refs are read once.

        Errors about the session rather than a ref (Vault unreachable or
        throttling, the token refused) are raised.
        """
        unique = list(dict.fromkeys(refs))
        results = await self._explain_denials(await gather_bounded(self._read, unique))
        raise_session_errors(results)
        return dict(zip(unique, results, strict=True))

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """The version of each ref that exists and may be read, without reading values.

        A ref that is missing, deleted, denied or malformed is left out, so the
        engine fetches it and learns why. Errors that concern the whole session
        (Vault down, token refused) are raised.
        """
        unique = list(dict.fromkeys(refs))
        results = await self._explain_denials(await self._versions(unique))
        raise_session_errors(results)
        return {ref: r for ref, r in zip(unique, results, strict=True) if isinstance(r, str)}

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        """Every secret below query.path whose full path matches query.name_regexp.

        Folders are listed level by level (each level concurrently), so the
        concurrency bound holds however deep the tree is. A subfolder the
        policy does not let us list is left out, as Vault's own UI does: a
        search over a shared mount sees what the identity may see. Denial of
        the folder asked for is an error.
        """
        folder, pattern = compile_query(query)
        keys: list[str] = []
        level = [folder]
        first = True
        while level:
            listings = await self._explain_denials(await gather_bounded(self._list, level))
            raise_session_errors(listings)
            level = []
            for listing in listings:
                if isinstance(listing, SecretNotFoundError) or (
                    isinstance(listing, AccessDeniedError) and not first
                ):
                    continue  # an empty (or emptied) folder, or one hidden from us
                if isinstance(listing, ProviderError):
                    raise listing
                for path in listing:
                    if path.endswith("/"):
                        level.append(path.rstrip("/"))
                    elif pattern is None or pattern.search(path):
                        keys.append(path)
            first = False
        return [RemoteRef(key=key) for key in await self._live(sorted(keys))]

    async def validate(self) -> None:
        """Prove the token is valid and the mount is a KV engine of the configured version."""
        try:
            await self._transport.get("token.lookup-self", "auth/token/lookup-self")
        except AccessDeniedError:
            raise ProviderAuthError(
                "vault: the token was refused: it is invalid, expired or revoked"
            ) from None
        await self._check_mount()

    async def close(self) -> None:
        """Close the HTTP session and remove the CA file."""
        await self._transport.close()

    # --- shared machinery -----------------------------------------------------------------

    async def _list(self, folder: str) -> list[str]:
        """The entries of one folder as full paths below the mount ("a/b", "a/c/")."""
        body = await self._transport.list("kv.list", self._list_path(folder))
        keys = obj(body.get("data"), "data").get("keys")
        if not isinstance(keys, list):
            raise ProviderError("vault: unexpected response: data.keys is not a list")
        prefix = f"{folder}/" if folder else ""
        return [prefix + str(key) for key in keys]

    async def _token_valid(self) -> bool:
        """Whether Vault still accepts the token; False only when it says so."""
        try:
            await self._transport.get("token.lookup-self", "auth/token/lookup-self")
        except ProviderAuthError:
            return False
        except ProviderError:
            return True  # unknown (down, throttled): the caller's own error stands
        return True

    async def _explain_denials(self, results: list[T | ProviderError]) -> list[T | ProviderError]:
        """Vault answers 403 both to a policy denial and to an expired or revoked token.

        The two need different handling (a denial is the store's policy, a dead
        token needs a new login), so when anything was denied, ask Vault once
        whether the token is still good.
        """
        if not any(isinstance(r, AccessDeniedError) for r in results):
            return results
        if await self._token_valid():
            return results
        expired = ProviderAuthError(
            "vault: the token was refused: it is invalid, expired or revoked; log in again"
        )
        return [expired if isinstance(r, AccessDeniedError) else r for r in results]

    async def _check_mount(self) -> None:
        """Compare the mount's engine with spec.provider.vault.version, when Vault tells."""
        try:
            body = await self._transport.get("sys.mount", f"sys/internal/ui/mounts/{self._mount}")
        except (AccessDeniedError, SecretNotFoundError, ProviderConfigError):
            # Vault hides mounts the token may not use at all, so silence
            # here proves nothing; reads will report a wrong mount.
            return
        mount = obj(body.get("data"), "data")
        options = mount.get("options")
        version = options.get("version", "1") if isinstance(options, Mapping) else "1"
        expected = self.kv_version
        if mount.get("type") != "kv" or version != expected:
            found = f"KV v{version}" if mount.get("type") == "kv" else str(mount.get("type"))
            raise ProviderConfigError(
                f"vault: the mount {self._mount}/ is a {found} engine, but "
                f"spec.provider.vault.version is v{expected}"
            )


def data_of(body: Json) -> Json:
    """The `data` object of a Vault response."""
    return obj(body.get("data"), "data")
