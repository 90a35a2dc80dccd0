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


SOPS_KMS = {
    "sops": {
        "age": {"secretRef": {"name": "sops-age", "key": "keys.txt", "namespace": "keys"}},
        "aws": {
            "region": "eu-west-1",
            "role": "arn:aws:iam::123456789012:role/r",
            "auth": {"serviceAccount": {"name": "sync"}},
        },
    }
}


def test_a_sops_store_logs_in_as_its_aws_identity_and_reads_documents_of_the_syncs_namespace() -> (
    None
):
    plan = plan_login(spec(SOPS_KMS), store_namespace="team-a", sync_namespace="team-a")
    assert (plan.namespace, plan.service_account, plan.audiences, plan.documents) == (
        "team-a",
        "sync",
        ("sts.amazonaws.com",),
        True,
    )
    # A namespaced store reads its age key from its own namespace, whatever the ref says
    # (the CRD refuses a namespace there anyway).
    assert [(s.field, s.namespace, s.name) for s in plan.secrets] == [
        ("ageKey", "team-a", "sops-age")
    ]


def test_a_cluster_sops_store_shares_its_age_key_but_each_namespace_reads_its_own_documents() -> (
    None
):
    age_only = spec({"sops": {"age": SOPS_KMS["sops"]["age"]}})
    a = plan_login(age_only, store_namespace=None, sync_namespace="team-a")
    b = plan_login(age_only, store_namespace=None, sync_namespace="team-b")
    assert [(s.namespace, s.name) for s in a.secrets] == [("keys", "sops-age")]
    assert (a.namespace, b.namespace) == ("team-a", "team-b")  # two sessions, two readers
    assert a != b


def test_a_plugin_store_presents_its_service_account_with_the_plugin_name_as_audience() -> None:
    plan = plan_login(
        spec({"plugin": {"name": "httpjson", "serviceAccount": {"name": "sync"}, "config": {}}}),
        store_namespace=None,
        sync_namespace="team-b",
    )
    assert (plan.namespace, plan.service_account, plan.audiences) == (
        "team-b",
        "sync",
        ("httpjson",),
    )
    assert not plan.documents
