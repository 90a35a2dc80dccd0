"""A document's data key, from the first of its keys this store can open: age (no call),
then AWS KMS, then Vault transit.

The store's identity decrypts: the role a KMS entry names and the address a transit entry
records are not used, so a document cannot make one namespace act as another's role.
A refusal about the identity (IAM or Vault policy) is AccessDeniedError; a ciphertext the
service will not open is the document's fault (SopsDocumentError); the service down or
the session refused is raised as such, for the engine to back off or log in again.
"""

from __future__ import annotations

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailableError,
)
from secretsync.providers.aws.keys import AwsKeys
from secretsync.providers.sops import document
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.vault.transit import Transit


class DataKeys:
    """The keys one store holds, as one session."""

    def __init__(self, *, age: bytes | None, aws: AwsKeys | None, transit: Transit | None) -> None:
        self.age = age
        self.aws = aws
        self.transit = transit

    async def unwrap(self, doc: document.EncryptedDocument, where: str) -> bytes:
        failure: ProviderError | None = None
        if doc.age and self.age is not None:
            try:
                return document.unwrap_age(doc.age, self.age, where=where)
            except ProviderError as error:
                failure = error
        if doc.kms and self.aws is not None:
            for kms in doc.kms:
                try:
                    return await self.aws.decrypt(
                        kms.enc, key_arn=kms.arn, context=kms.context, what=where
                    )
                except ProviderError as error:
                    failure = _blame(error, where, "AWS KMS")
        if doc.transit and self.transit is not None:
            for transit in doc.transit:
                try:
                    return await self.transit.decrypt(
                        transit.enc,
                        engine_path=transit.engine_path,
                        key_name=transit.key_name,
                        what=where,
                    )
                except ProviderError as error:
                    failure = _blame(error, where, "Vault transit")
        if failure is not None:
            raise failure
        raise SopsDocumentError(
            f"sops: {where} is encrypted for {_listed(_document_kinds(doc))}, and the store "
            f"has no key of those kinds (it has {_listed(self._kinds())}); set "
            "spec.provider.sops accordingly; it is not synced"
        )

    def _kinds(self) -> list[str]:
        return [
            name
            for name, present in (
                ("age", self.age is not None),
                ("AWS KMS", self.aws is not None),
                ("Vault transit", self.transit is not None),
            )
            if present
        ]


def raise_if_session(error: ProviderError) -> None:
    """The session or the service failing is no property of one document: raised, so the
    engine backs off or logs in again instead of blaming every ref."""
    if isinstance(error, ProviderUnavailableError) or (
        isinstance(error, ProviderAuthError) and not isinstance(error, AccessDeniedError)
    ):
        raise error


def _blame(error: ProviderError, where: str, service: str) -> ProviderError:
    """The session or the service failing is raised at once (raise_if_session); an
    identity refused stays an AccessDeniedError; anything else the service said is about
    this document's key."""
    raise_if_session(error)
    if isinstance(error, AccessDeniedError):
        return error
    return SopsDocumentError(
        f"sops: {where}: {service} would not decrypt its data key ({error}); it is not synced"
    )


def _document_kinds(doc: document.EncryptedDocument) -> list[str]:
    kinds = [
        name
        for name, present in (
            ("age", bool(doc.age)),
            ("AWS KMS", bool(doc.kms)),
            ("Vault transit", bool(doc.transit)),
        )
        if present
    ]
    return kinds + list(doc.other_keys)


def _listed(kinds: list[str]) -> str:
    return ", ".join(kinds) or "none"
