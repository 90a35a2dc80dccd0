"""Reads SOPS documents as one session, and opens them.

Several refs to one document are one read and one decryption. A document whose
version (a digest of its encrypted bytes, or the S3 ETag) has not moved since the last
fetch is not decrypted again: no KMS or transit call for a document that did not change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from secretsync.errors import (
    AccessDeniedError,
    DocumentRefusedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.providers.aws.keys import AwsKeys
from secretsync.providers.base import Document, DocumentReader
from secretsync.providers.sops import document, sources
from secretsync.providers.vault.transit import Transit


class SopsClient:
    """A SecretsClient over SOPS documents."""

    def __init__(
        self,
        *,
        documents: DocumentReader,
        age: bytes | None,
        aws: AwsKeys | None,
        transit: Transit | None,
        gate: CallGate,
    ) -> None:
        self._documents = documents
        self._gate = gate
        self._age = age
        self._aws = aws
        self._transit = transit
        # The last document opened from each source, with the version it was read at.
        self._opened: dict[sources.Source, tuple[str, RemoteValue]] = {}

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
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
            try:
                value: RemoteValue | ProviderError = await self._open(source)
            except (ProviderUnavailableError, ProviderAuthError) as error:
                if not isinstance(error, AccessDeniedError):
                    raise  # the session or the service, not this document: the engine backs off
                value = error
            except ProviderError as error:
                value = error
            results.update(dict.fromkeys(wanted, value))
        return results

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        out: dict[RemoteRef, str] = {}
        for ref in refs:
            try:
                source = sources.parse(ref.key)
                out[ref] = await self._version(source)
            except (ProviderUnavailableError, ProviderAuthError) as error:
                if not isinstance(error, AccessDeniedError):
                    raise
            except ProviderError:
                continue  # missing or malformed: the fetch says why
        return out

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        raise ProviderConfigError(
            "sops: dataFrom.find is not supported: name each document in remoteRef.key"
        )

    async def validate(self) -> None:
        if self._age is not None:
            document.check_age_identities(self._age)
        if self._aws is not None:
            await self._aws.validate()
        if self._transit is not None:
            await self._transit.validate()

    async def close(self) -> None:
        self._opened.clear()
        if self._aws is not None:
            await self._aws.close()
        if self._transit is not None:
            await self._transit.close()

    # --- reading and opening ---------------------------------------------------------------

    async def _read(self, source: sources.Source, where: str) -> tuple[bytes, str]:
        if isinstance(source, sources.InS3):
            if self._aws is None:
                raise ProviderConfigError(
                    f"sops: {where}: reading S3 needs spec.provider.sops.aws "
                    "(the identity to read it as)"
                )
            return await self._aws.get_object(source.bucket, source.key, what=where)
        doc = await self._read_object(source)
        if source.key not in doc.data:
            raise SecretNotFoundError(f"sops: {where} does not exist (no such key)")
        raw = doc.data[source.key]
        return raw, _content_version(raw)

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

    async def _version(self, source: sources.Source) -> str:
        where = sources.describe(source, self._documents.namespace)
        if isinstance(source, sources.InS3):
            if self._aws is None:
                raise ProviderConfigError(f"sops: {where}: no AWS identity")
            return await self._aws.etag(source.bucket, source.key, what=where)
        return (await self._read(source, where))[1]

    async def _open(self, source: sources.Source) -> RemoteValue:
        where = sources.describe(source, self._documents.namespace)
        raw, version = await self._read(source, where)
        opened = self._opened.get(source)
        if opened is not None and opened[0] == version:
            return opened[1]
        fmt = document.format_for(source.file_name)
        encrypted = document.parse(raw, fmt, where=where)
        data_key = await self._data_key(encrypted, where)
        decrypted = document.decrypt(encrypted, data_key, where=where)
        value = RemoteValue(
            value=decrypted.plaintext(),
            version=version,
            # Text in a binary document is text, as a SecretString is (property works on
            # JSON in it); only bytes that are not UTF-8 are binary.
            is_binary=fmt is document.Format.BINARY and not _is_text(decrypted.plaintext()),
            document=decrypted.tree,
        )
        self._opened[source] = (version, value)
        return value

    async def _data_key(self, doc: document.EncryptedDocument, where: str) -> bytes:
        """The document's data key, from the first of its keys this store can open: age
        (no call), then KMS, then transit. A refusal of the last one tried is the answer."""
        failure: ProviderError | None = None
        if doc.age and self._age is not None:
            try:
                return document.unwrap_age(doc.age, self._age, where=where)
            except ProviderError as error:
                failure = error
        if doc.kms and self._aws is not None:
            for kms in doc.kms:
                try:
                    return await self._aws.decrypt(
                        kms.enc, key_arn=kms.arn, context=kms.context, what=where
                    )
                except ProviderUnavailableError:
                    raise
                except ProviderError as error:
                    failure = error
        if doc.transit and self._transit is not None:
            for transit in doc.transit:
                try:
                    return await self._transit.decrypt(
                        transit.enc,
                        engine_path=transit.engine_path,
                        key_name=transit.key_name,
                        what=where,
                    )
                except ProviderUnavailableError:
                    raise
                except ProviderError as error:
                    failure = error
        if failure is not None:
            raise failure
        raise DocumentRefusedError(
            f"sops: {where} is encrypted for {_kinds(doc)}, and the store has no key of "
            f"those kinds (it has {self._store_kinds()}); set spec.provider.sops accordingly"
        )

    def _store_kinds(self) -> str:
        kinds = [
            name
            for name, present in (
                ("age", self._age is not None),
                ("AWS KMS", self._aws is not None),
                ("Vault transit", self._transit is not None),
            )
            if present
        ]
        return ", ".join(kinds) or "none"


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


def _kinds(doc: document.EncryptedDocument) -> str:
    kinds = [
        name
        for name, present in (
            ("age", bool(doc.age)),
            ("AWS KMS", bool(doc.kms)),
            ("Vault transit", bool(doc.transit)),
        )
        if present
    ]
    kinds += list(doc.other_keys)
    return ", ".join(kinds) or "no key at all"
