"""The CRDs, applied with the built kubectl, accept good resources and refuse bad
ones at admission with a message that names the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from harness import scenario
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]

API = "secretsync.io/v1alpha1"

AWS_STORE: dict[str, Any] = {
    "apiVersion": API,
    "kind": "SecretStore",
    "metadata": {"name": "aws"},
    "spec": {
        "provider": {
            "aws": {
                "service": "SecretsManager",
                "region": "eu-west-1",
                "role": "arn:aws:iam::123456789012:role/team-a-reader",
                "auth": {"serviceAccount": {"name": "team-a-sync"}},
            }
        }
    },
}
VAULT_STORE: dict[str, Any] = {
    "apiVersion": API,
    "kind": "SecretStore",
    "metadata": {"name": "vault"},
    "spec": {
        "provider": {
            "vault": {
                "server": "http://127.0.0.1:8200",
                "path": "secret",
                "version": "v2",
                "auth": {
                    "kubernetes": {"role": "team-a", "serviceAccount": {"name": "team-a-sync"}}
                },
            }
        }
    },
}
SYNC: dict[str, Any] = {
    "apiVersion": API,
    "kind": "SecretSync",
    "metadata": {"name": "db"},
    "spec": {
        "storeRef": {"name": "aws"},
        "refreshInterval": "1h",
        "target": {"name": "db-credentials", "type": "Opaque"},
        "data": [{"secretKey": "password", "remoteRef": {"key": "team-a/db", "property": "p"}}],
    },
}


def edit(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the manifest with one dotted path set (or removed, for value=None)."""
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


def apply(env: DevEnv, namespace: str, doc: dict[str, Any]) -> Any:
    return env.kubectl(
        "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(doc), check=False
    )


DYNAMIC_SYNC = edit(
    edit(SYNC, "spec.data", None),
    "spec.dynamic",
    {"path": "database/creds/app", "method": "POST", "parameters": {"ttl": "1h"}},
)
CERTIFICATE_SYNC = edit(
    edit(edit(SYNC, "spec.data", None), "spec.target", {"name": "tls"}),
    "spec.certificate",
    {"role": "web", "commonName": "app.example.test", "altNames": ["www.example.test"]},
)
SOPS_STORE = edit(
    edit(AWS_STORE, "spec.provider.aws", None),
    "spec.provider.sops",
    {
        "age": {"secretRef": {"name": "sops-age", "key": "keys.txt"}},
        "aws": {
            "region": "eu-west-1",
            "role": "arn:aws:iam::123456789012:role/team-a-sops",
            "auth": {"serviceAccount": {"name": "sync"}},
        },
    },
)
CLUSTER_STORE_AMBIENT = edit(
    edit(AWS_STORE, "kind", "ClusterSecretStore"), "spec.provider.aws.auth", None
)


@pytest.mark.parametrize(
    "doc",
    [
        AWS_STORE,
        VAULT_STORE,
        SYNC,
        edit(
            edit(SYNC, "spec.data", None),
            "spec.dataFrom",
            [
                {"extract": {"key": "team-a/db"}},
                {"find": {"path": "team-a/", "name": {"regexp": "^db-"}, "tags": {"env": "p"}}},
            ],
        ),
        edit(DYNAMIC_SYNC, "spec.lease", {"renewPercent": 50, "revokeGracePeriod": "30s"}),
        edit(CERTIFICATE_SYNC, "spec.target.type", "kubernetes.io/tls"),
        edit(SYNC, "spec.refreshInterval", "0"),
        edit(SYNC, "spec.refreshInterval", "1h30m"),
        CLUSTER_STORE_AMBIENT,
        SOPS_STORE,
        edit(SOPS_STORE, "spec.provider.sops.aws", None),
        edit(
            edit(VAULT_STORE, "kind", "ClusterSecretStore"),
            "spec.provider.vault.auth",
            {"token": {"secretRef": {"name": "vault-token", "key": "token", "namespace": "ops"}}},
        ),
    ],
    ids=[
        "aws-store",
        "vault-store",
        "sync-data",
        "sync-dataFrom",
        "sync-dynamic",
        "sync-certificate",
        "sync-once",
        "sync-compound",
        "cluster-store-ambient",
        "sops-store-age-and-kms",
        "sops-store-age-only",
        "cluster-store-secret-in-ops",
    ],
)
def test_valid_resources_are_accepted(env: DevEnv, namespace: str, doc: dict[str, Any]) -> None:
    result = apply(env, namespace, doc)
    assert result.returncode == 0, result.stderr
    if doc["kind"] == "ClusterSecretStore":
        env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, doc["metadata"]["name"])


INVALID = {
    "sops-store-without-keys": (
        edit(SOPS_STORE, "spec.provider.sops", {}),
        "spec.provider.sops: set at least one of age, aws or vault",
    ),
    "sops-store-with-aws-and-vault": (
        edit(
            SOPS_STORE,
            "spec.provider.sops.vault",
            {
                k: v
                for k, v in VAULT_STORE["spec"]["provider"]["vault"].items()
                if k not in ("path", "version")  # a KV mount: not a transit login's
            },
        ),
        "spec.provider.sops: set at most one of aws or vault",
    ),
    "sops-store-age-key-elsewhere": (
        edit(
            SOPS_STORE,
            "spec.provider.sops.age.secretRef",
            {"name": "k", "key": "keys.txt", "namespace": "other"},
        ),
        "spec.provider.sops.age.secretRef.namespace is not allowed",
    ),
    "plugin-store-named-like-a-built-in": (
        edit(edit(AWS_STORE, "spec.provider.aws", None), "spec.provider.plugin", {"name": "aws"}),
        "spec.provider.plugin.name: aws, vault and sops are built in",
    ),
    "store-without-provider": (
        edit(AWS_STORE, "spec.provider.aws", None),
        "spec.provider: set exactly one of aws, vault, sops or plugin",
    ),
    "store-with-two-providers": (
        edit(AWS_STORE, "spec.provider.vault", VAULT_STORE["spec"]["provider"]["vault"]),
        "spec.provider: set exactly one of aws, vault, sops or plugin",
    ),
    "aws-store-without-auth": (
        edit(AWS_STORE, "spec.provider.aws.auth", {}),
        "spec.provider.aws.auth: set exactly one of serviceAccount or secretRef",
    ),
    "aws-store-with-two-auth-methods": (
        edit(
            AWS_STORE,
            "spec.provider.aws.auth.secretRef",
            {
                "accessKeyId": {"name": "aws", "key": "id"},
                "secretAccessKey": {"name": "aws", "key": "secret"},
            },
        ),
        "spec.provider.aws.auth: set exactly one of serviceAccount or secretRef",
    ),
    "cluster-store-with-two-auth-methods": (
        edit(
            edit(AWS_STORE, "kind", "ClusterSecretStore"),
            "spec.provider.aws.auth.secretRef",
            {
                "accessKeyId": {"name": "aws", "key": "id"},
                "secretAccessKey": {"name": "aws", "key": "secret"},
            },
        ),
        "spec.provider.aws.auth: set at most one of serviceAccount or secretRef",
    ),
    "vault-store-without-auth": (
        edit(VAULT_STORE, "spec.provider.vault.auth", {}),
        "spec.provider.vault.auth: set exactly one of kubernetes, appRole, jwt or token",
    ),
    "vault-store-with-two-auth-methods": (
        edit(
            VAULT_STORE,
            "spec.provider.vault.auth.token",
            {"secretRef": {"name": "vault-token", "key": "token"}},
        ),
        "spec.provider.vault.auth: set exactly one of kubernetes, appRole, jwt or token",
    ),
    "service-account-token-target": (
        edit(SYNC, "spec.target.type", "kubernetes.io/service-account-token"),
        "spec.target.type may not be a service-account-token or bootstrap token type",
    ),
    "bootstrap-token-target": (
        edit(SYNC, "spec.target.type", "bootstrap.kubernetes.io/token"),
        "spec.target.type may not be a service-account-token or bootstrap token type",
    ),
    "sync-without-data-or-dataFrom": (
        edit(SYNC, "spec.data", None),
        "spec: set exactly one of data/dataFrom",
    ),
    "sync-with-empty-data": (
        edit(SYNC, "spec.data", []),
        "spec: set exactly one of data/dataFrom",
    ),
    "sync-with-data-and-dynamic": (
        edit(SYNC, "spec.dynamic", {"path": "database/creds/app"}),
        "spec: set exactly one of data/dataFrom",
    ),
    "sync-with-dynamic-and-certificate": (
        edit(DYNAMIC_SYNC, "spec.certificate", {"role": "web", "commonName": "a.test"}),
        "spec: set exactly one of data/dataFrom",
    ),
    "lease-without-issued-credentials": (
        edit(SYNC, "spec.lease", {"renewPercent": 50}),
        "spec.lease applies to issued credentials only",
    ),
    "certificate-into-an-opaque-secret": (
        edit(CERTIFICATE_SYNC, "spec.target.type", "Opaque"),
        "spec.target.type: a certificate is written as a kubernetes.io/tls Secret",
    ),
    "renew-percent-out-of-range": (
        edit(DYNAMIC_SYNC, "spec.lease", {"renewPercent": 95}),
        "spec.lease.renewPercent",
    ),
    "dynamic-path-with-leading-slash": (
        edit(DYNAMIC_SYNC, "spec.dynamic.path", "/database/creds/app"),
        "spec.dynamic.path must be a Vault path",
    ),
    "malformed-grace-period": (
        edit(DYNAMIC_SYNC, "spec.lease", {"revokeGracePeriod": "two minutes"}),
        "spec.lease.revokeGracePeriod must be a duration",
    ),
    "invalid-secret-key": (
        edit(SYNC, "spec.data", [{"secretKey": "db/password", "remoteRef": {"key": "k"}}]),
        "spec.data[].secretKey must consist of alphanumerics, '-', '_' or '.'",
    ),
    "malformed-refresh-interval": (
        edit(SYNC, "spec.refreshInterval", "1 hour"),
        "spec.refreshInterval must be a duration such as 30s, 15m or 1h",
    ),
    "namespace-in-storeRef": (
        edit(SYNC, "spec.storeRef.namespace", "team-b"),
        "spec.storeRef.namespace is not allowed",
    ),
    "namespace-in-rollout-target": (
        edit(
            SYNC,
            "spec.rollout",
            {"restart": [{"kind": "Deployment", "name": "api", "namespace": "team-b"}]},
        ),
        "spec.rollout.restart[].namespace is not allowed",
    ),
    "namespace-in-store-secretRef": (
        edit(
            VAULT_STORE,
            "spec.provider.vault.auth",
            {"token": {"secretRef": {"name": "t", "key": "token", "namespace": "team-b"}}},
        ),
        "spec.provider.vault.auth.token.secretRef.namespace is not allowed",
    ),
    "namespace-in-store-serviceAccount": (
        edit(
            AWS_STORE,
            "spec.provider.aws.auth.serviceAccount",
            {"name": "team-a-sync", "namespace": "team-b"},
        ),
        "spec.provider.aws.auth.serviceAccount.namespace is not allowed",
    ),
}


@pytest.mark.parametrize("case", INVALID.keys())
def test_invalid_resources_are_refused_with_a_message_naming_the_field(
    env: DevEnv, namespace: str, case: str
) -> None:
    doc, message = INVALID[case]
    result = apply(env, namespace, doc)
    assert result.returncode != 0, f"{case} was accepted"
    assert message in result.stderr, result.stderr
    if doc["kind"] != "ClusterSecretStore":
        listed = env.kubectl(
            "get", scenario.RESOURCES[doc["kind"]], "-n", namespace, "-o", "name"
        ).stdout
        assert listed == "", "the refused object was stored anyway"
