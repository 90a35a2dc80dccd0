"""The provider seam, batch-first, in the spirit of External Secrets Operator's SecretsClient.

A `Backend` is built from a store's provider spec; it turns login material the
engine gathered from Kubernetes (a ServiceAccount token, credential values
from Secrets) into a `Session`, and a session into a `SecretsClient`. The
engine caches sessions per identity (auth/) and never sees an SDK.

Errors are the ones in secretsync.errors; SDK exceptions are wrapped, and no
message carries a secret value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from secretsync.errors import ProviderError
from secretsync.models.remote import CallGate, CallObserver, FindQuery, RemoteRef, RemoteValue
from secretsync.models.sync import Certificate, Dynamic


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    """The data of a ConfigMap or Secret a provider reads its values from (sops)."""

    data: Mapping[str, bytes] = dataclasses.field(repr=False)


class DocumentReader(Protocol):
    """Reads ConfigMaps and Secrets of one namespace only: the SecretSync's, so that a
    store can never read another namespace's objects (the engine makes one per session).

    A missing object raises SecretNotFoundError, a refused read AccessDeniedError."""

    @property
    def namespace(self) -> str:
        """The one namespace it reads."""

    async def read(self, kind: Literal["ConfigMap", "Secret"], name: str) -> Document:
        """The object's data (a ConfigMap's data and binaryData; a Secret's decoded data)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoginMaterial:
    """What the engine read from Kubernetes for one identity."""

    service_account_token: str | None = dataclasses.field(default=None, repr=False)
    # Credential values from Secrets, by the spec field that referenced them
    # ("accessKeyId", "secretAccessKey", "sessionToken", "secretId", "token", "ageKey").
    secrets: Mapping[str, bytes] = dataclasses.field(default_factory=dict, repr=False)
    ca_pem: bytes | None = None
    # For providers whose documents live in the cluster (LoginPlan.documents).
    documents: DocumentReader | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Session:
    """A logged-in identity."""

    identity: str  # for audit records: a role ARN, "vault:kubernetes/team-a"; never a secret
    expires_at: float | None  # epoch seconds; None: it does not expire
    credentials: object = dataclasses.field(repr=False)  # the backend's own, opaque to the engine


class SecretsClient(Protocol):
    """Reads secrets as one session.

    A failure of one ref (not found, denied, malformed) is that ref's result. A
    failure of the session or the service (down, throttling, credentials refused)
    is raised, so the engine backs off or logs in again instead of blaming every key.
    """

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        """Every ref's value, or the error for that ref; batched where the API allows."""

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """The current version id of each ref without reading values (a cheap change check).

        Refs that are missing, denied or malformed are left out: the engine fetches
        them and learns why."""

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        """The refs of every remote secret matching the query."""

    async def validate(self) -> None:
        """Prove the session can talk to the provider (store readiness)."""

    async def close(self) -> None:
        """Release connections."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteMetadata:
    """What a provider says about a remote secret's rotation and age; never its value."""

    rotation_enabled: bool | None  # None: the provider has no rotation setting
    last_changed: float | None  # epoch seconds the current value was written or rotated


@runtime_checkable
class MetadataReader(Protocol):
    """A client that can describe a remote secret without reading it (`secretsync audit`)."""

    async def metadata(self, ref: RemoteRef) -> RemoteMetadata:
        """The secret's rotation setting and the time of its current value; a
        ProviderError (not found, denied) when the provider will not say."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueMessage:
    """One message of an event queue; the body may quote anything, so it is never logged."""

    id: str
    receipt: str = dataclasses.field(repr=False)
    body: str = dataclasses.field(repr=False)


class EventQueue(Protocol):
    """A queue of provider change events (AWS: EventBridge -> SQS), read as a session."""

    async def receive(self, *, wait_seconds: int) -> Sequence[QueueMessage]:
        """Long-poll for up to 10 messages; an empty list after wait_seconds."""

    async def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Delete handled messages (batched)."""


@runtime_checkable
class EventSourceBackend(Protocol):
    """A backend whose provider can push change events (AWS)."""

    def event_queue(self, session: Session, queue_url: str, observe: CallObserver) -> EventQueue:
        """The queue at queue_url, read with the session's credentials."""


class Backend(Protocol):
    """One provider kind, configured from a store's provider spec."""

    name: str  # "aws" | "vault": the provider label of metrics

    @property
    def endpoint(self) -> str:
        """Where the calls go (service, region, server): with the identity, what one
        circuit covers, since providers throttle per caller and endpoint."""

    async def login(self, material: LoginMaterial) -> Session:
        """Exchange the login material for a session."""

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        """A client reading as the session; each API call passes through the gate."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Issued:
    """Credentials a provider issued: the Secret's data, and the lease that keeps them."""

    data: Mapping[str, bytes] = dataclasses.field(repr=False)
    lease_id: str = dataclasses.field(repr=False)  # "" when the provider gave no lease
    lease_seconds: int  # the lease's TTL (0: none)
    renewable: bool
    not_after: float | None = None  # a certificate's end (epoch seconds)
    serial: str | None = None  # a certificate's serial number (public)


class LeaseIssuer(Protocol):
    """Issues, renews and revokes leased credentials as one token (docs/design/0010).

    Errors are those of a SecretsClient: a refusal about the request is a
    ProviderError, the session or the service failing raises its own kind."""

    async def issue(self, request: Dynamic | Certificate) -> Issued:
        """New credentials."""

    async def renew(self, lease_id: str, increment: int) -> int:
        """Extend the lease; the seconds it has left (capped by its max TTL)."""

    async def renew_token(self, increment: int) -> int:
        """Extend the token itself; the seconds it has left (0: it never expires)."""

    async def revoke_token(self) -> None:
        """Revoke the token, and with it every lease it issued."""

    async def revoke_lease(self, lease_id: str) -> None:
        """Revoke one lease (when the token is not ours to revoke)."""

    async def revoke_certificate(self, mount: str, serial: str) -> None:
        """Revoke a certificate by its serial number."""

    async def close(self) -> None:
        """Release connections."""


@runtime_checkable
class IssuingBackend(Protocol):
    """A backend that issues leased credentials (Vault's dynamic secrets and PKI)."""

    # Whether each login yields a token of its own (False for a given static token, which
    # is shared and never revoked by the operator).
    owns_login_tokens: bool

    def issuer(self, session: Session, gate: CallGate) -> LeaseIssuer:
        """An issuer acting as the session's token."""

    def token_of(self, session: Session) -> str:
        """The session's token, to be kept with the leases it issued."""

    def resume(self, token: str, like: Session) -> Session:
        """A session for a kept token, with the TLS trust of `like`."""
