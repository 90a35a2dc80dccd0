"""SecretStore and ClusterSecretStore specs (see crds/ for the field documentation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from secretsync.models import duration
from secretsync.models.base import Model


class SecretKeyRef(Model):
    """A key of a Secret holding a credential."""

    name: str
    key: str
    namespace: str | None = None  # only ever set in a ClusterSecretStore


class ServiceAccountRef(Model):
    """A ServiceAccount whose TokenRequest token is the identity presented to the provider."""

    name: str
    audiences: tuple[str, ...] = ()


class AwsSecretRefAuth(Model):
    access_key_id: SecretKeyRef
    secret_access_key: SecretKeyRef
    session_token: SecretKeyRef | None = None


class AwsAuth(Model):
    service_account: ServiceAccountRef | None = None
    secret_ref: AwsSecretRefAuth | None = None


class AwsIdentity(Model):
    """Who the operator is in AWS, and where it calls: shared by the AWS provider and the
    SOPS provider's KMS keys and S3 documents."""

    region: str
    endpoint: str | None = None
    role: str | None = None
    additional_roles: tuple[str, ...] = ()
    auth: AwsAuth | None = None  # None: ambient credentials (ClusterSecretStore only)

    DEFAULT_AUDIENCE: Literal["sts.amazonaws.com"] = "sts.amazonaws.com"


class AwsProvider(AwsIdentity):
    service: Literal["SecretsManager", "ParameterStore"]


class VaultKubernetesAuth(Model):
    mount_path: str = "kubernetes"
    role: str
    service_account: ServiceAccountRef


class VaultAppRoleAuth(Model):
    mount_path: str = "approle"
    role_id: str
    secret_id_ref: SecretKeyRef


class VaultJwtAuth(Model):
    mount_path: str = "jwt"
    role: str
    service_account: ServiceAccountRef


class VaultTokenAuth(Model):
    secret_ref: SecretKeyRef


class VaultAuth(Model):
    kubernetes: VaultKubernetesAuth | None = None
    app_role: VaultAppRoleAuth | None = None
    jwt: VaultJwtAuth | None = None
    token: VaultTokenAuth | None = None


class CaRef(Model):
    kind: Literal["ConfigMap", "Secret"]
    name: str
    key: str
    namespace: str | None = None


class VaultConnection(Model):
    """Which Vault, trusted how, logged in to as whom: shared by the Vault provider and the
    SOPS provider's transit keys."""

    server: str
    ca_bundle: str | None = None
    ca_ref: CaRef | None = None
    namespace: str | None = None  # a Vault Enterprise namespace
    auth: VaultAuth

    DEFAULT_AUDIENCE: Literal["vault"] = "vault"


class VaultProvider(VaultConnection):
    path: str = "secret"
    version: Literal["v1", "v2"] = "v2"


class SopsAge(Model):
    secret_ref: SecretKeyRef  # an age key file: AGE-SECRET-KEY-1... lines


class SopsProvider(Model):
    """SOPS documents (docs/providers/sops.md): read from a ConfigMap or Secret of the
    SecretSync's namespace or from S3, their data key unwrapped with an age key, AWS KMS or
    Vault transit."""

    age: SopsAge | None = None
    aws: AwsIdentity | None = None  # KMS keys and S3 documents, as this identity
    vault: VaultConnection | None = None  # transit keys, as this login


class PluginProvider(Model):
    """A provider installed as a Python package (docs/providers/plugins.md): found by
    `name` in the `secretsync.providers` entry-point group, configured by `config`."""

    name: str
    service_account: ServiceAccountRef | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class ProviderSpec(Model):
    aws: AwsProvider | None = None
    vault: VaultProvider | None = None
    sops: SopsProvider | None = None
    plugin: PluginProvider | None = None

    def kind(self) -> str:
        """The one provider set ("aws", "vault", "sops", or the plug-in's name); "unknown"
        when none is (the CRD schema requires exactly one)."""
        if self.plugin is not None:
            return self.plugin.name
        for name in ("aws", "vault", "sops"):
            if getattr(self, name) is not None:
                return name
        return "unknown"


class RefreshBudget(Model):
    calls_per_second: float = 20.0
    burst: int = 40


class SqsEvents(Model):
    queue_url: str


class StoreEvents(Model):
    sqs: SqsEvents | None = None


class StoreCondition(Model):
    namespaces: tuple[str, ...] = ()
    namespace_selector: dict[str, Any] | None = None


class StoreSpec(Model):
    """The spec shared by SecretStore and ClusterSecretStore."""

    provider: ProviderSpec
    refresh_budget: RefreshBudget = Field(default_factory=RefreshBudget)
    change_check_interval: str = "0"
    events: StoreEvents = Field(default_factory=StoreEvents)
    conditions: tuple[StoreCondition, ...] = ()  # ClusterSecretStore only

    @property
    def change_check_seconds(self) -> float:
        return duration.parse(self.change_check_interval, field="spec.changeCheckInterval")
