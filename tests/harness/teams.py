"""A namespace that syncs from AWS (moto) and Vault (OpenBao) as its own identities, for an
operator that runs in a Pod of the local node (tests/e2e, `make demo NODE=1`).

Its stores name the addresses that work from inside a Pod (node.pod_aws_endpoint,
node.pod_vault_addr). The namespace's ServiceAccount `sync` is its identity for both:
TokenRequest (audience sts.amazonaws.com) then AssumeRoleWithWebIdentity of the
namespace's own role, and OpenBao's kubernetes auth (audience vault) to a role and policy
that read only secret/<namespace>/*.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, cast

import boto3
import kubernetes

from harness import scenario, vaultsetup
from harness.devenv import AWS_REGION, DevEnv

ACCOUNT = "123456789012"  # moto's default account
SERVICE_ACCOUNT = "sync"


def aws_role(namespace: str) -> str:
    """The IAM role the namespace's AWS store assumes."""
    return f"arn:aws:iam::{ACCOUNT}:role/{namespace}-reader"


def secrets_manager(env: DevEnv) -> Any:
    """A Secrets Manager client on moto with its dummy admin keys, for seeding."""
    # Any: boto3's stubs accept only a literal service name.
    return cast(Any, boto3).client(
        "secretsmanager",
        endpoint_url=env.aws_endpoint,
        region_name=AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def put_aws(env: DevEnv, name: str, value: str) -> None:
    """Create or update a Secrets Manager secret (a new version when it exists)."""
    client = secrets_manager(env)
    try:
        client.put_secret_value(SecretId=name, SecretString=value)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=value)


@dataclasses.dataclass(kw_only=True)
class Team:
    """A namespace with an AWS and a Vault SecretStore, and what its Secrets must hold."""

    env: DevEnv
    namespace: str
    # SecretSync name -> (target Secret name, the data it must hold)
    expected: dict[str, tuple[str, dict[str, bytes]]] = dataclasses.field(default_factory=dict)
    aws_syncs: set[str] = dataclasses.field(default_factory=set)  # the others read Vault

    @property
    def api(self) -> Any:
        return self.env.api_client()

    def aws_store(self, name: str = "aws") -> dict[str, Any]:
        assert self.env.node is not None, "the environment has no node"
        return {
            "apiVersion": scenario.API,
            "kind": "SecretStore",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "provider": {
                    "aws": {
                        "service": "SecretsManager",
                        "region": AWS_REGION,
                        "endpoint": self.env.node.pod_aws_endpoint,
                        "role": aws_role(self.namespace),
                        "auth": {"serviceAccount": {"name": SERVICE_ACCOUNT}},
                    }
                }
            },
        }

    def vault_store(self, name: str = "vault") -> dict[str, Any]:
        assert self.env.node is not None, "the environment has no node"
        store = vaultsetup.store(self.env, self.namespace, name=name)
        store["spec"]["provider"]["vault"]["server"] = self.env.node.pod_vault_addr
        return store

    def aws_sync(self, name: str, *, key: str | None = None) -> dict[str, Any]:
        """A SecretSync of the `password` property of AWS secret <namespace>/<name> (or
        `key`), plus every top-level key of <namespace>/<name>-conn."""
        key = key or f"{self.namespace}/{name}"
        return vaultsetup.sync(
            self.namespace,
            name,
            {
                "refreshInterval": "1h",
                "target": {"name": f"{name}-credentials"},
                "data": [
                    {"secretKey": "password", "remoteRef": {"key": key, "property": "password"}}
                ],
                "dataFrom": [{"extract": {"key": f"{self.namespace}/{name}-conn"}}],
            },
            store="aws",
        )

    def vault_sync(self, name: str) -> dict[str, Any]:
        """A SecretSync of every key of Vault secret <namespace>/<name>, templated."""
        return vaultsetup.sync(
            self.namespace,
            name,
            {
                "refreshInterval": "1h",
                "target": {
                    "name": f"{name}-config",
                    "template": {"data": {"API_URL": "https://{{ client_id }}@api.example.com"}},
                },
                "dataFrom": [{"extract": {"key": f"{self.namespace}/{name}"}}],
            },
            store="vault",
        )

    def seed_aws(self, name: str) -> dict[str, bytes]:
        """The remote secrets of aws_sync(name), with fresh values; returns the data the
        target Secret must hold."""
        password = f"pw-{uuid.uuid4().hex}"
        put_aws(self.env, f"{self.namespace}/{name}", json.dumps({"password": password}))
        conn = {"host": f"db.{self.namespace}.svc", "port": "5432"}
        put_aws(self.env, f"{self.namespace}/{name}-conn", json.dumps(conn))
        data = {"password": password.encode(), **{k: v.encode() for k, v in conn.items()}}
        self.expected[name] = (f"{name}-credentials", data)
        self.aws_syncs.add(name)
        return data

    def seed_vault(self, name: str) -> dict[str, bytes]:
        """The remote secret of vault_sync(name), with a fresh client id."""
        client_id = f"client-{uuid.uuid4().hex[:12]}"
        vaultsetup.put(self.env, f"{self.namespace}/{name}", {"client_id": client_id})
        data = {"API_URL": f"https://{client_id}@api.example.com".encode()}
        self.expected[name] = (f"{name}-config", data)
        return data

    def secret_data(self, sync: str) -> dict[str, bytes] | None:
        target, _ = self.expected[sync]
        return scenario.secret_data(self.api, self.namespace, target)

    def wait_synced(self, *names: str, timeout: float = 90) -> dict[str, dict[str, Any]]:
        """Wait until each SecretSync is Ready=True, Synced, at its generation; returns them."""
        return {
            name: scenario.wait_for_reason(
                self.api, self.namespace, name, "Synced", timeout=timeout
            )
            for name in names or tuple(self.expected)
        }


def create(env: DevEnv, namespace: str, *, stores: bool = True, syncs: bool = True) -> Team:
    """The namespace, its ServiceAccount, its Vault policy and role; with `stores` both
    SecretStores and with `syncs` SecretSync `db` (AWS) and `api` (Vault), seeded. (Without
    them, they are for the caller to apply, e.g. from Git.)"""
    api = env.api_client()
    try:
        kubernetes.client.CoreV1Api(api).create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    vaultsetup.bind_namespace(env, api, namespace)  # also creates ServiceAccount `sync`
    team = Team(env=env, namespace=namespace)
    if stores:
        scenario.apply(env, team.aws_store(), team.vault_store())
    if syncs:
        team.seed_aws("db")
        team.seed_vault("api")
        scenario.apply(env, team.aws_sync("db"), team.vault_sync("api"))
    return team
