"""Reads SOPS documents as one session, and opens them.

Several refs to one document are one read and one decryption. Opening (parsing,
verifying, decrypting, printing) is pure Python and runs in a worker thread, so a large
document does not hold up the event loop. A document read again within WINDOW seconds at
the same version is not opened again (the burst of first syncs a GitOps apply brings);
past that, nothing decrypted is kept, as the engine keeps values no longer
(engine/recent.py). The change check compares versions without opening anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence

from secretsync.errors import (
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.providers.aws.keys import AwsKeys
from secretsync.providers.base import Document, DocumentReader
from secretsync.providers.sops import document, sources
from secretsync.providers.sops.keys import DataKeys, raise_if_session

WINDOW = 30.0  # seconds an opened document may serve again at the same version


class SopsClient:
    """A SecretsClient over SOPS documents."""

    def __init__(
        self,
        *,
        documents: DocumentReader,
        keys: DataKeys,
        gate: CallGate,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._documents = documents
        self._keys = keys
        self._gate = gate
        self._clock = clock
        # source -> (version, when opened, the value)
        self._opened: dict[sources.Source, tuple[str, float, RemoteValue]] = {}

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        self._forget_old()
        results: dict[RemoteRef, RemoteValue | ProviderError] = {}
        by_source: dict[sources.Source, list[RemoteRef]] = {}
        for ref in dict.fromkeys(refs):
            try:
                source = sources.parse(ref.key)
                if ref.version is not None:
                    raise ProviderConfigError(
                        f"sops: remote key {ref.key!r}: version is not supported; a document's "
                        "version is the ConfigMap, Secret or S3 object that holds it"
                    )
            except ProviderError as error:
                results[ref] = error
                continue
            by_source.setdefault(source, []).append(ref)
        for source, wanted in by_source.items():
            value: RemoteValue | ProviderError
            try:
                value = await self._open(source)
            except ProviderError as error:
                raise_if_session(error)
                value = error
            results.update(dict.fromkeys(wanted, value))
        return results

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """Each ref's document version; a document that cannot be read is left out (the
        fetch says why). Only the service being down is raised: an S3 HEAD has no error
        body, so its 403 cannot tell a refused session from a refused object."""
        by_source: dict[sources.Source, list[RemoteRef]] = {}
        for ref in dict.fromkeys(refs):
            try:
                by_source.setdefault(sources.parse(ref.key), []).append(ref)
            except ProviderError:
                continue
        out: dict[RemoteRef, str] = {}
        for source, wanted in by_source.items():
            try:
                version = await self._version(source)
            except ProviderUnavailableError:
                raise
            except ProviderError:
                continue
            out.update(dict.fromkeys(wanted, version))
        return out

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        raise ProviderConfigError(
            "sops: dataFrom.find is not supported: name each document in remoteRef.key"
        )

    async def validate(self) -> None:
        if self._keys.age is not None:
            document.check_age_identities(self._keys.age)
        if self._keys.aws is not None:
            await self._keys.aws.validate()
        if self._keys.transit is not None:
            await self._keys.transit.validate()

    async def close(self) -> None:
        self._opened.clear()
        if self._keys.aws is not None:
            await self._keys.aws.close()
        if self._keys.transit is not None:
            await self._keys.transit.close()

    # --- reading and opening ---------------------------------------------------------------

    async def _open(self, source: sources.Source) -> RemoteValue:
        where = sources.describe(source, self._documents.namespace)
        raw, version = await self._read(source, where)
        opened = self._opened.get(source)
        if opened is not None and opened[0] == version:
            return opened[2]
        fmt = document.format_for(source.file_name)
        encrypted = await asyncio.to_thread(document.parse, raw, fmt, where=where)
        data_key = await self._keys.unwrap(encrypted, where)
        value = await asyncio.to_thread(_decrypted, encrypted, data_key, where, version)
        self._opened[source] = (version, self._clock(), value)
        return value

    async def _read(self, source: sources.Source, where: str) -> tuple[bytes, str]:
        if isinstance(source, sources.InS3):
            return await self._aws_for(where).get_object(source.bucket, source.key, what=where)
        doc = await self._read_object(source)
        if source.key not in doc.data:
            raise SecretNotFoundError(f"sops: {where} does not exist (no such key)")
        raw = doc.data[source.key]
        return raw, _content_version(raw)

    async def _version(self, source: sources.Source) -> str:
        where = sources.describe(source, self._documents.namespace)
        if isinstance(source, sources.InS3):
            return await self._aws_for(where).etag(source.bucket, source.key, what=where)
        return (await self._read(source, where))[1]

    def _aws_for(self, where: str) -> AwsKeys:
        if self._keys.aws is None:
            raise ProviderConfigError(
                f"sops: {where}: reading S3 needs spec.provider.sops.aws (the identity to "
                "read it as)"
            )
        return self._keys.aws

    async def _read_object(self, source: sources.InCluster) -> Document:
        """A ConfigMap or Secret read through the gate: these reads are this provider's
        calls (the store's refreshBudget paces them, metrics count them)."""
        operation = f"Read{source.kind}"
        await self._gate.enter(operation)
        error: ProviderError | None = ProviderError(f"sops: {operation} did not complete")
        try:
            doc = await self._documents.read(source.kind, source.name)
            error = None
            return doc
        except ProviderError as failure:
            error = failure
            raise
        finally:
            self._gate.leave(operation, error)

    def _forget_old(self) -> None:
        now = self._clock()
        for source in [s for s, (_, at, _) in self._opened.items() if now - at > WINDOW]:
            del self._opened[source]


def _decrypted(
    encrypted: document.EncryptedDocument, data_key: bytes, where: str, version: str
) -> RemoteValue:
    decrypted = document.decrypt(encrypted, data_key, where=where)
    plaintext = decrypted.plaintext()
    return RemoteValue(
        value=plaintext,
        version=version,
        # Text in a binary document is text, as a SecretString is (property works on JSON
        # in it); only bytes that are not UTF-8 are binary.
        is_binary=decrypted.format is document.Format.BINARY and not _is_text(plaintext),
        document=decrypted.tree,
    )


def _content_version(raw: bytes) -> str:
    """The version of a document kept in a ConfigMap or Secret: a digest of its encrypted
    bytes (which say nothing of the plaintext). Per key, unlike the object's
    resourceVersion, so that changing one document of a ConfigMap does not make every
    other document in it look changed."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
