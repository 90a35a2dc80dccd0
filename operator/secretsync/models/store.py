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


class AwsProvider(Model):
    service: Literal["SecretsManager", "ParameterStore"]
    region: str
    endpoint: str | None = None
    role: str | None = None
    additional_roles: tuple[str, ...] = ()
    auth: AwsAuth | None = None  # None: ambient credentials (ClusterSecretStore only)

    DEFAULT_AUDIENCE: Literal["sts.amazonaws.com"] = "sts.amazonaws.com"


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


class VaultProvider(Model):
    server: str
    ca_bundle: str | None = None
    ca_ref: CaRef | None = None
    namespace: str | None = None  # a Vault Enterprise namespace
    path: str = "secret"
    version: Literal["v1", "v2"] = "v2"
    auth: VaultAuth

    DEFAULT_AUDIENCE: Literal["vault"] = "vault"


class ProviderSpec(Model):
    aws: AwsProvider | None = None
    vault: VaultProvider | None = None


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
