"""Executing a login plan: what a store's identity needs read from Kubernetes."""

from __future__ import annotations

from typing import Literal

from secretsync.auth.plan import TOKEN_SECONDS, LoginPlan
from secretsync.errors import (
    AccessDeniedError,
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    ProviderConfigError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.kube import Kube
from secretsync.providers.base import Document, LoginMaterial


async def login_material(kube: Kube, plan: LoginPlan) -> LoginMaterial:
    """The ServiceAccount token (TokenRequest), credential values and CA the plan names."""
    token = None
    if plan.service_account:
        token, _ = await kube.token_request(
            namespace=plan.namespace,
            service_account=plan.service_account,
            audiences=plan.audiences,
            seconds=TOKEN_SECONDS,
        )
    secrets = {s.field: await kube.secret_value(s.namespace, s.name, s.key) for s in plan.secrets}
    ca_pem = None
    if plan.ca is not None:
        kind, loc = plan.ca
        if kind == "Secret":
            ca_pem = await kube.secret_value(loc.namespace, loc.name, loc.key)
        else:
            ca_pem = await kube.config_map_value(loc.namespace, loc.name, loc.key)
    return LoginMaterial(
        service_account_token=token,
        secrets=secrets,
        ca_pem=ca_pem,
        documents=NamespaceDocuments(kube, plan.namespace) if plan.documents else None,
    )


class NamespaceDocuments:
    """ConfigMaps and Secrets of one namespace, read for a provider (providers.DocumentReader).

    The namespace is fixed here, by the engine, from the login plan: a provider can name
    an object, never a namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace

    @property
    def namespace(self) -> str:
        return self._namespace

    async def read(self, kind: Literal["ConfigMap", "Secret"], name: str) -> Document:
        where = f"{kind} {self._namespace}/{name}"
        if not self._namespace:  # a ClusterSecretStore's own check reads no document
            raise ProviderConfigError(f"{kind} {name}: no SecretSync namespace to read it in")
        try:
            if kind == "Secret":
                secret = await self._kube.get_secret(self._namespace, name)
                if secret is None:
                    raise KubeNotFoundError(where)
                return Document(data=secret.data)
            return Document(data=await self._kube.get_config_map(self._namespace, name))
        except KubeNotFoundError:
            raise SecretNotFoundError(f"{where} does not exist") from None
        except KubeForbiddenError:
            raise AccessDeniedError(
                f"the operator may not read {where}: grant it get on ConfigMaps in the "
                "namespaces it serves (Helm: rbac.sopsDocuments=true, docs/rbac.md)"
            ) from None
        except KubeError as exc:  # the apiserver is this provider's service
            raise ProviderUnavailableError(f"{where} could not be read: {exc}") from None
