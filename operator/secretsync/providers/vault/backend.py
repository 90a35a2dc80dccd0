"""VaultBackend: log in to Vault (or OpenBao) and build KV clients for the session."""

from __future__ import annotations

import dataclasses
import time

from secretsync.errors import AccessDeniedError, ProviderAuthError, ProviderConfigError
from secretsync.models.remote import CallGate
from secretsync.models.store import VaultProvider
from secretsync.providers.base import LeaseIssuer, LoginMaterial, SecretsClient, Session
from secretsync.providers.vault.issuer import VaultIssuer
from secretsync.providers.vault.kv import KvClient
from secretsync.providers.vault.kv1 import KvV1Client
from secretsync.providers.vault.kv2 import KvV2Client
from secretsync.providers.vault.transit import Transit
from secretsync.providers.vault.transport import (
    Json,
    Transport,
    decode_ca_bundle,
    field_int,
    obj,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VaultCredentials:
    """A session's Vault token, and the CA it was obtained with (for the clients)."""

    token: str = dataclasses.field(repr=False)
    ca_pem: bytes | None = dataclasses.field(default=None, repr=False)  # public, but long


def _material_secret(material: LoginMaterial, field: str, spec_field: str) -> str:
    """A credential value the engine read from a Secret, without surrounding whitespace.

    Secrets made with `kubectl create secret --from-file` often end in a newline,
    which Vault would count as part of the token.
    """
    raw = material.secrets.get(field)
    if not raw:
        raise ProviderConfigError(f"vault: {spec_field} gave no value for the login")
    try:
        return raw.decode().strip()
    except UnicodeDecodeError:
        raise ProviderConfigError(f"vault: the value behind {spec_field} is not text") from None


def _service_account_token(material: LoginMaterial, method: str) -> str:
    if not material.service_account_token:
        raise ProviderConfigError(
            f"vault: auth.{method} needs a ServiceAccount token and none was requested"
        )
    return material.service_account_token


def _expires_at(seconds: int) -> float | None:
    """Vault's 0 means "never expires" (root and periodic-less service tokens)."""
    return time.time() + seconds if seconds > 0 else None


class VaultBackend:
    """The Vault provider of one store: `login` gets a token, `client` reads the KV mount.

    Every auth method of the spec is supported: kubernetes and jwt (the
    ServiceAccount's TokenRequest token), appRole (role id from the spec, secret
    id from a Secret) and a plain token (from a Secret).
    """

    name = "vault"

    def __init__(self, spec: VaultProvider) -> None:
        self._spec = spec
        # Decoded now so a malformed caBundle fails the store at once, not at login.
        self._ca_bundle = decode_ca_bundle(spec.ca_bundle) if spec.ca_bundle else None

    async def login(self, material: LoginMaterial) -> Session:
        """Exchange the material for a Vault token with the configured auth method."""
        auth = self._spec.auth
        ca_pem = self._ca_bundle or material.ca_pem
        if auth.token is not None:
            return await self._token_session(material, ca_pem)
        if auth.kubernetes is not None:
            method, mount, role = "kubernetes", auth.kubernetes.mount_path, auth.kubernetes.role
            body = {"role": role, "jwt": _service_account_token(material, method)}
        elif auth.jwt is not None:
            method, mount, role = "jwt", auth.jwt.mount_path, auth.jwt.role
            body = {"role": role, "jwt": _service_account_token(material, method)}
        elif auth.app_role is not None:
            method, mount, role = "approle", auth.app_role.mount_path, auth.app_role.role_id
            secret_id = _material_secret(material, "secretId", "auth.appRole.secretIdRef")
            body = {"role_id": role, "secret_id": secret_id}
        else:
            raise ProviderConfigError("vault: spec.provider.vault.auth names no auth method")
        mount = mount.strip("/")
        async with self._transport(token="", ca_pem=ca_pem) as transport:
            response = await transport.login(f"auth/{mount}/login", body)
        return _session(response, identity=f"vault:{method}/{mount}/{role}", ca_pem=ca_pem)

    @property
    def endpoint(self) -> str:
        """Where calls go: a server (and Enterprise namespace) throttles as a whole."""
        return f"vault:{self._spec.server}:{self._spec.namespace or ''}"

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        """A KV client reading as the session, with its own HTTP connection pool."""
        credentials = _credentials(session)
        transport = self._transport(token=credentials.token, ca_pem=credentials.ca_pem, gate=gate)
        kind: type[KvClient] = KvV2Client if self._spec.version == "v2" else KvV1Client
        return kind(transport=transport, mount=self._spec.path)

    @property
    def owns_login_tokens(self) -> bool:
        """Each login makes a token of its own, except with a given static token."""
        return self._spec.auth.token is None

    def issuer(self, session: Session, gate: CallGate) -> LeaseIssuer:
        """Issues, renews and revokes leases as the session's token."""
        credentials = _credentials(session)
        return VaultIssuer(
            self._transport(token=credentials.token, ca_pem=credentials.ca_pem, gate=gate)
        )

    def transit(self, session: Session, gate: CallGate) -> Transit:
        """Transit decryption as the session's token (the SOPS provider's keys)."""
        credentials = _credentials(session)
        return Transit(
            self._transport(token=credentials.token, ca_pem=credentials.ca_pem, gate=gate)
        )

    def token_of(self, session: Session) -> str:
        return _credentials(session).token

    def resume(self, token: str, like: Session) -> Session:
        """A session for a token kept with its leases (its expiry is tracked there)."""
        credentials = VaultCredentials(token=token, ca_pem=_credentials(like).ca_pem)
        return Session(identity=like.identity, expires_at=None, credentials=credentials)

    def _transport(
        self, *, token: str, ca_pem: bytes | None, gate: CallGate | None = None
    ) -> Transport:
        return Transport(
            server=self._spec.server,
            token=token,
            namespace=self._spec.namespace,
            ca_pem=ca_pem,
            gate=gate,
        )

    async def _token_session(self, material: LoginMaterial, ca_pem: bytes | None) -> Session:
        """A given token needs no login; lookup-self proves it and tells its TTL."""
        token = _material_secret(material, "token", "auth.token.secretRef")
        async with self._transport(token=token, ca_pem=ca_pem) as transport:
            try:
                body = await transport.get("token.lookup-self", "auth/token/lookup-self")
            except AccessDeniedError:
                # Vault answers 403 to a token it does not know.
                raise ProviderAuthError(
                    "vault: the token from auth.token.secretRef was refused: it is invalid, "
                    "expired or revoked"
                ) from None
        ttl = field_int(obj(body.get("data"), "data"), "ttl", 0)
        return Session(
            identity="vault:token",
            expires_at=_expires_at(ttl),
            credentials=VaultCredentials(token=token, ca_pem=ca_pem),
        )


def _credentials(session: Session) -> VaultCredentials:
    credentials = session.credentials
    if not isinstance(credentials, VaultCredentials):
        raise TypeError("vault: the session was not created by VaultBackend.login")
    return credentials


def _session(response: Json, *, identity: str, ca_pem: bytes | None) -> Session:
    auth = obj(response.get("auth"), "auth")
    token = auth.get("client_token")
    if not isinstance(token, str) or not token:
        raise ProviderAuthError(f"vault: the login as {identity} returned no token")
    return Session(
        identity=identity,
        expires_at=_expires_at(field_int(auth, "lease_duration", 0)),
        credentials=VaultCredentials(token=token, ca_pem=ca_pem),
    )
