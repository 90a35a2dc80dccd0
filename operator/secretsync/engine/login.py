"""Executing a login plan: what a store's identity needs read from Kubernetes."""

from __future__ import annotations

from secretsync.auth.plan import TOKEN_SECONDS, LoginPlan
from secretsync.kube import Kube
from secretsync.providers.base import LoginMaterial


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
    return LoginMaterial(service_account_token=token, secrets=secrets, ca_pem=ca_pem)
