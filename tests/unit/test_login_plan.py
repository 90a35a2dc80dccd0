"""Which identity a store uses: never another namespace's, and a cluster store's
ServiceAccount is always the SecretSync's namespace's."""

from __future__ import annotations

from typing import Any

import pytest

from secretsync.auth.plan import plan_login
from secretsync.errors import ConfigError
from secretsync.models.store import StoreSpec


def spec(provider: dict[str, Any]) -> StoreSpec:
    return StoreSpec.model_validate({"provider": provider})


AWS_SA = {
    "aws": {
        "service": "SecretsManager",
        "region": "eu-west-1",
        "role": "arn:aws:iam::123456789012:role/r",
        "auth": {"serviceAccount": {"name": "sync"}},
    }
}


def test_a_secret_store_uses_its_own_namespace_service_account_with_the_sts_audience() -> None:
    plan = plan_login(spec(AWS_SA), store_namespace="team-a", sync_namespace="team-a")
    assert (plan.namespace, plan.service_account, plan.audiences) == (
        "team-a",
        "sync",
        ("sts.amazonaws.com",),
    )


def test_a_cluster_store_resolves_the_service_account_in_the_syncs_namespace() -> None:
    plan = plan_login(spec(AWS_SA), store_namespace=None, sync_namespace="team-b")
    assert plan.describe() == "serviceaccount:team-b/sync"


def test_a_namespaced_store_reads_credentials_from_its_own_namespace_only() -> None:
    store = spec(
        {
            "vault": {
                "server": "http://v",
                "auth": {"token": {"secretRef": {"name": "t", "key": "token", "namespace": "x"}}},
            }
        }
    )
    plan = plan_login(store, store_namespace="team-a", sync_namespace="team-a")
    assert [(s.namespace, s.name, s.field) for s in plan.secrets] == [("team-a", "t", "token")]


def test_ambient_credentials_are_refused_for_a_namespaced_store() -> None:
    ambient = spec({"aws": {"service": "SecretsManager", "region": "eu-west-1"}})
    with pytest.raises(ConfigError, match="ambient credentials are for ClusterSecretStores only"):
        plan_login(ambient, store_namespace="team-a", sync_namespace="team-a")
    assert plan_login(ambient, store_namespace=None, sync_namespace="x").describe() == "ambient"


def test_vault_kubernetes_auth_defaults_to_the_vault_audience() -> None:
    store = spec(
        {
            "vault": {
                "server": "http://v",
                "auth": {"kubernetes": {"role": "r", "serviceAccount": {"name": "sync"}}},
            }
        }
    )
    plan = plan_login(store, store_namespace="team-a", sync_namespace="team-a")
    assert plan.audiences == ("vault",)
