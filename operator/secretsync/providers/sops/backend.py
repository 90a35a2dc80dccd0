"""The SOPS backend: a store's `spec.provider.sops` as a Backend.

A session is the store's AWS or Vault login (made exactly as for Secrets Manager or KV:
TokenRequest, then AssumeRoleWithWebIdentity or a Vault login), its age identities, and
a reader of the SecretSync's namespace. The SOPS format itself is document.py.
"""

from __future__ import annotations

import dataclasses
import time

from secretsync.errors import ProviderConfigError
from secretsync.models.remote import CallGate
from secretsync.models.store import SopsProvider, VaultConnection, VaultProvider
from secretsync.providers.aws import login as aws_login
from secretsync.providers.aws.keys import AwsKeys, session_credentials
from secretsync.providers.base import DocumentReader, LoginMaterial, SecretsClient, Session
from secretsync.providers.sops.client import SopsClient
from secretsync.providers.sops.keys import DataKeys
from secretsync.providers.vault import VaultBackend

AGE_SESSION_SECONDS = 300  # a rotated age key file is in use within five minutes


@dataclasses.dataclass(frozen=True, kw_only=True)
class SopsCredentials:
    """What a SOPS session holds: the inner AWS or Vault session, the age key file."""

    documents: DocumentReader = dataclasses.field(repr=False)
    age: bytes | None = dataclasses.field(default=None, repr=False)
    aws: Session | None = None
    vault: Session | None = None


class SopsBackend:
    """SOPS documents from the SecretSync's namespace or S3, opened with age, KMS or transit."""

    name = "sops"

    def __init__(self, spec: SopsProvider) -> None:
        self._spec = spec
        self._vault = VaultBackend(_as_vault_provider(spec.vault)) if spec.vault else None

    @property
    def endpoint(self) -> str:
        """Where calls go: KMS and S3 of a region, or a Vault server; age calls nothing."""
        if self._spec.aws is not None:
            return f"sops:aws:{self._spec.aws.region}:{self._spec.aws.endpoint or ''}"
        if self._vault is not None:
            return f"sops:{self._vault.endpoint}"
        return "sops:age"

    async def login(self, material: LoginMaterial) -> Session:
        if material.documents is None:
            raise ProviderConfigError("sops: the session has no reader of the namespace")
        age = None
        if self._spec.age is not None:
            age = material.secrets.get("ageKey")
            if not age:
                raise ProviderConfigError("sops: spec.provider.sops.age.secretRef gave no key")
        aws = vault = None
        if self._spec.aws is not None:
            aws = await aws_login.login(self._spec.aws, material)
        elif self._vault is not None:
            vault = await self._vault.login(material)
        inner = aws or vault
        namespace = material.documents.namespace
        # Never "does not expire": the session holds the key file as it was read, and a
        # rotated or repaired one must be read again (and idle sessions must go).
        expires_at = time.time() + AGE_SESSION_SECONDS
        if inner is not None and inner.expires_at is not None:
            expires_at = min(expires_at, inner.expires_at)
        return Session(
            identity=inner.identity if inner else f"sops:age:{namespace}",
            expires_at=expires_at,
            credentials=SopsCredentials(
                documents=material.documents, age=age, aws=aws, vault=vault
            ),
        )

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        credentials = session.credentials
        if not isinstance(credentials, SopsCredentials):
            raise ProviderConfigError(
                f"session {session.identity!r} was not made by the sops backend"
            )
        aws_keys = None
        if credentials.aws is not None and self._spec.aws is not None:
            aws_keys = AwsKeys(
                spec=self._spec.aws, credentials=session_credentials(credentials.aws), gate=gate
            )
        transit = None
        if credentials.vault is not None and self._vault is not None:
            transit = self._vault.transit(credentials.vault, gate)
        keys = DataKeys(age=credentials.age, aws=aws_keys, transit=transit)
        return SopsClient(documents=credentials.documents, keys=keys, gate=gate)


def _as_vault_provider(connection: VaultConnection) -> VaultProvider:
    """The Vault backend logs in from a provider spec; transit needs no KV mount."""
    return VaultProvider(
        **{name: getattr(connection, name) for name in VaultConnection.model_fields}
    )
