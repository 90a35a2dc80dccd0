"""Which identity a store uses for a SecretSync, and what must be read to log in.

Pure logic: the engine executes the plan (TokenRequest, Secret reads) through
kube/, and hands the result to the provider backend.
"""

from __future__ import annotations

import dataclasses

from secretsync.errors import ConfigError
from secretsync.models.store import SecretKeyRef, ServiceAccountRef, StoreSpec

TOKEN_SECONDS = 3600  # TokenRequest lifetime; the session it buys is cached as long


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretKeyLocation:
    """A credential in a Secret key, by the spec field that named it."""

    field: str
    namespace: str
    name: str
    key: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoginPlan:
    """What to gather from Kubernetes before logging in."""

    namespace: str  # where the identity lives: part of the identity's cache key
    service_account: str | None = None
    audiences: tuple[str, ...] = ()
    secrets: tuple[SecretKeyLocation, ...] = ()
    ca: tuple[str, SecretKeyLocation] | None = None  # ("ConfigMap"|"Secret", location)

    def describe(self) -> str:
        """The identity in words, for audit records and status messages."""
        if self.service_account:
            return f"serviceaccount:{self.namespace}/{self.service_account}"
        if self.secrets:
            first = self.secrets[0]
            return f"secret:{first.namespace}/{first.name}"
        return "ambient"


def plan_login(spec: StoreSpec, *, store_namespace: str | None, sync_namespace: str) -> LoginPlan:
    """The login plan of a store used by a SecretSync in sync_namespace.

    A namespaced store resolves every reference in its own namespace. A
    ClusterSecretStore resolves ServiceAccounts in the SecretSync's namespace
    (each namespace authenticates as itself) and Secret references in their
    own `namespace`, else the SecretSync's.
    """
    home = store_namespace or sync_namespace

    def located(field: str, ref: SecretKeyRef) -> SecretKeyLocation:
        ns = store_namespace or ref.namespace or sync_namespace
        return SecretKeyLocation(field=field, namespace=ns, name=ref.name, key=ref.key)

    def with_sa(sa: ServiceAccountRef, default_audience: str) -> LoginPlan:
        return LoginPlan(
            namespace=home,
            service_account=sa.name,
            audiences=sa.audiences or (default_audience,),
            ca=ca,
        )

    ca: tuple[str, SecretKeyLocation] | None = None
    if spec.provider.aws is not None:
        aws = spec.provider.aws
        auth = aws.auth
        if auth is None or (auth.secret_ref is None and auth.service_account is None):
            if store_namespace is not None:
                raise ConfigError(
                    "spec.provider.aws.auth: a SecretStore must name an identity "
                    "(serviceAccount or secretRef); ambient credentials are for "
                    "ClusterSecretStores only"
                )
            return LoginPlan(namespace="")
        if auth.service_account is not None:
            return with_sa(auth.service_account, aws.DEFAULT_AUDIENCE)
        refs = auth.secret_ref
        if refs is None:
            raise ConfigError(
                "spec.provider.aws.auth: set exactly one of serviceAccount or secretRef"
            )
        secrets = [
            located("accessKeyId", refs.access_key_id),
            located("secretAccessKey", refs.secret_access_key),
        ]
        if refs.session_token is not None:
            secrets.append(located("sessionToken", refs.session_token))
        return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets))
    if spec.provider.vault is not None:
        vault = spec.provider.vault
        if vault.ca_ref is not None:
            ref = vault.ca_ref
            ca = (
                ref.kind,
                located("caRef", SecretKeyRef(name=ref.name, key=ref.key, namespace=ref.namespace)),
            )
        auth_v = vault.auth
        if auth_v.kubernetes is not None:
            return with_sa(auth_v.kubernetes.service_account, vault.DEFAULT_AUDIENCE)
        if auth_v.jwt is not None:
            return with_sa(auth_v.jwt.service_account, vault.DEFAULT_AUDIENCE)
        if auth_v.app_role is not None:
            secrets = [located("secretId", auth_v.app_role.secret_id_ref)]
            return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets), ca=ca)
        if auth_v.token is not None:
            secrets = [located("token", auth_v.token.secret_ref)]
            return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets), ca=ca)
        raise ConfigError("spec.provider.vault.auth: set exactly one auth method")
    raise ConfigError("spec.provider: set exactly one of aws or vault")


def _secrets_namespace(secrets: list[SecretKeyLocation]) -> str:
    return secrets[0].namespace
