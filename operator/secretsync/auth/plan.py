"""Which identity a store uses for a SecretSync, and what must be read to log in.

Pure logic: the engine executes the plan (TokenRequest, Secret reads) through
kube/, and hands the result to the provider backend.
"""

from __future__ import annotations

import dataclasses

from secretsync.errors import ConfigError
from secretsync.models.store import (
    AwsIdentity,
    SecretKeyRef,
    ServiceAccountRef,
    SopsProvider,
    StoreSpec,
    VaultConnection,
)

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
    # Whether the provider reads documents (ConfigMaps, Secrets) of `namespace` (sops).
    documents: bool = False

    def describe(self) -> str:
        """The identity in words, for audit records and status messages."""
        if self.service_account:
            return f"serviceaccount:{self.namespace}/{self.service_account}"
        if self.secrets:
            first = self.secrets[0]
            return f"secret:{first.namespace}/{first.name}"
        return "ambient"

    def session_key(self) -> str:
        """What one session serves: the identity and, for a provider that reads documents
        of a namespace, that namespace (a ClusterSecretStore's one age key must still give
        each namespace a session, and a reader, of its own)."""
        if self.documents:
            return f"{self.describe()} reading {self.namespace}"
        return self.describe()


def plan_login(spec: StoreSpec, *, store_namespace: str | None, sync_namespace: str) -> LoginPlan:
    """The login plan of a store used by a SecretSync in sync_namespace.

    A namespaced store resolves every reference in its own namespace. A
    ClusterSecretStore resolves ServiceAccounts in the SecretSync's namespace
    (each namespace authenticates as itself) and Secret references in their
    own `namespace`, else the SecretSync's.
    """
    where = _Where(store_namespace=store_namespace, sync_namespace=sync_namespace)
    provider = spec.provider
    if provider.aws is not None:
        return _aws(provider.aws, where, "spec.provider.aws")
    if provider.vault is not None:
        return _vault(provider.vault, where)
    if provider.sops is not None:
        return _sops(provider.sops, where)
    if provider.plugin is not None:
        plugin = provider.plugin
        if plugin.service_account is None:
            return LoginPlan(namespace=where.home)
        return where.with_sa(plugin.service_account, plugin.name)
    raise ConfigError("spec.provider: set exactly one of aws, vault, sops or plugin")


@dataclasses.dataclass(frozen=True)
class _Where:
    store_namespace: str | None
    sync_namespace: str

    @property
    def home(self) -> str:
        return self.store_namespace or self.sync_namespace

    def located(self, field: str, ref: SecretKeyRef) -> SecretKeyLocation:
        ns = self.store_namespace or ref.namespace or self.sync_namespace
        return SecretKeyLocation(field=field, namespace=ns, name=ref.name, key=ref.key)

    def with_sa(
        self,
        sa: ServiceAccountRef,
        default_audience: str,
        ca: tuple[str, SecretKeyLocation] | None = None,
    ) -> LoginPlan:
        return LoginPlan(
            namespace=self.home,
            service_account=sa.name,
            audiences=sa.audiences or (default_audience,),
            ca=ca,
        )


def _aws(aws: AwsIdentity, where: _Where, field: str) -> LoginPlan:
    auth = aws.auth
    if auth is None or (auth.secret_ref is None and auth.service_account is None):
        if where.store_namespace is not None:
            raise ConfigError(
                f"{field}.auth: a SecretStore must name an identity "
                "(serviceAccount or secretRef); ambient credentials are for "
                "ClusterSecretStores only"
            )
        return LoginPlan(namespace="")
    if auth.service_account is not None:
        return where.with_sa(auth.service_account, aws.DEFAULT_AUDIENCE)
    refs = auth.secret_ref
    if refs is None:
        raise ConfigError(f"{field}.auth: set exactly one of serviceAccount or secretRef")
    secrets = [
        where.located("accessKeyId", refs.access_key_id),
        where.located("secretAccessKey", refs.secret_access_key),
    ]
    if refs.session_token is not None:
        secrets.append(where.located("sessionToken", refs.session_token))
    return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets))


def _vault(vault: VaultConnection, where: _Where) -> LoginPlan:
    ca: tuple[str, SecretKeyLocation] | None = None
    if vault.ca_ref is not None:
        ref = vault.ca_ref
        ca = (
            ref.kind,
            where.located(
                "caRef", SecretKeyRef(name=ref.name, key=ref.key, namespace=ref.namespace)
            ),
        )
    auth_v = vault.auth
    if auth_v.kubernetes is not None:
        return where.with_sa(auth_v.kubernetes.service_account, vault.DEFAULT_AUDIENCE, ca)
    if auth_v.jwt is not None:
        return where.with_sa(auth_v.jwt.service_account, vault.DEFAULT_AUDIENCE, ca)
    if auth_v.app_role is not None:
        secrets = [where.located("secretId", auth_v.app_role.secret_id_ref)]
        return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets), ca=ca)
    if auth_v.token is not None:
        secrets = [where.located("token", auth_v.token.secret_ref)]
        return LoginPlan(namespace=_secrets_namespace(secrets), secrets=tuple(secrets), ca=ca)
    raise ConfigError("spec.provider.vault.auth: set exactly one auth method")


def _sops(sops: SopsProvider, where: _Where) -> LoginPlan:
    """The AWS or Vault identity (at most one: the CRD says so), the age key, and always
    the SecretSync's namespace (a SecretStore's own): documents are read there, so a
    session serves one namespace only, whatever the identity (a ClusterSecretStore's age
    key is shared)."""
    plan = LoginPlan(namespace=where.home)
    if sops.aws is not None:
        plan = _aws(sops.aws, where, "spec.provider.sops.aws")
    elif sops.vault is not None:
        plan = _vault(sops.vault, where)
    age = (where.located("ageKey", sops.age.secret_ref),) if sops.age is not None else ()
    return dataclasses.replace(
        plan, namespace=where.home, secrets=plan.secrets + age, documents=True
    )


def _secrets_namespace(secrets: list[SecretKeyLocation]) -> str:
    return secrets[0].namespace
