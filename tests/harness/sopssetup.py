"""Set-up the SOPS tests share: an age key in a Secret, a KMS key in moto, a transit key
in OpenBao that only the namespace's Vault role may decrypt with, ConfigMaps and S3
objects holding documents, and the stores that read them."""

from __future__ import annotations

import base64
import contextlib
import urllib.error
from typing import Any, cast

import boto3
import kubernetes
import pyrage

from harness import scenario
from harness.bao import bao_request
from harness.devenv import AWS_REGION, DevEnv

ACCOUNT = "123456789012"  # moto's default account
DOCUMENT_LABEL = "secretsync.io/sops-document"


def aws_admin(env: DevEnv, service: str) -> Any:
    """A client of moto itself (not through the proxy), with its dummy admin keys."""
    return cast(Any, boto3).client(
        service,
        endpoint_url=env.aws_endpoint,
        region_name=AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def role(namespace: str) -> str:
    """The IAM role a namespace's SOPS store assumes (KMS Decrypt, S3 GetObject)."""
    return f"arn:aws:iam::{ACCOUNT}:role/{namespace}-sops"


def kms_cli_env(env: DevEnv) -> dict[str, str]:
    """What `sops encrypt --kms` needs to reach moto as its admin (the team encrypting)."""
    return {
        "AWS_ENDPOINT_URL": env.aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any key; a dummy
        "AWS_REGION": AWS_REGION,
    }


def kms_key(env: DevEnv, namespace: str) -> str:
    """A new KMS key for the namespace's documents; its ARN."""
    key = aws_admin(env, "kms").create_key(Description=f"sops {namespace}")
    return str(key["KeyMetadata"]["Arn"])


def bucket(env: DevEnv, name: str) -> str:
    with contextlib.suppress(Exception):  # already there
        aws_admin(env, "s3").create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": AWS_REGION}
        )
    return name


def put_object(env: DevEnv, bucket_name: str, key: str, body: bytes) -> None:
    aws_admin(env, "s3").put_object(Bucket=bucket_name, Key=key, Body=body)


def age_identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def age_key_secret(api: Any, namespace: str, name: str, identity: pyrage.x25519.Identity) -> None:
    """The age key file (as SOPS_AGE_KEY_FILE holds it) in a Secret of the namespace."""
    text = f"# public key: {identity.to_public()}\n{identity}\n".encode()
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name),
            data={"keys.txt": base64.b64encode(text).decode()},
        ),
    )


def transit_key(env: DevEnv, api: Any, namespace: str) -> str:
    """A transit key named after the namespace, and a kubernetes-auth role (of the same
    name, for its `sync` ServiceAccount) whose policy may decrypt with it and nothing
    else. Returns the key's URI as `sops --hc-vault-transit` takes it."""
    with contextlib.suppress(urllib.error.HTTPError):  # mounted by an earlier test
        bao_request(
            env.vault_addr, env.vault_token, "POST", "sys/mounts/transit", {"type": "transit"}
        )
    bao_request(env.vault_addr, env.vault_token, "POST", f"transit/keys/{namespace}", {})
    policy = f'path "transit/decrypt/{namespace}" {{ capabilities = ["update"] }}\n'
    bao_request(
        env.vault_addr,
        env.vault_token,
        "PUT",
        f"sys/policies/acl/sops-{namespace}",
        {"policy": policy},
    )
    bao_request(
        env.vault_addr,
        env.vault_token,
        "POST",
        f"auth/kubernetes/role/sops-{namespace}",
        {
            "bound_service_account_names": ["sync"],
            "bound_service_account_namespaces": [namespace],
            "audience": "vault",
            "token_policies": [f"sops-{namespace}"],
            "token_ttl": "1h",
        },
    )
    scenario.service_account(api, namespace, "sync")
    return f"{env.vault_addr}/v1/transit/keys/{namespace}"


def config_map(
    api: Any, namespace: str, name: str, documents: dict[str, bytes], *, labelled: bool = True
) -> None:
    """Create or replace a ConfigMap holding documents (text in data, the rest in
    binaryData), labelled so that the operator watches it, as kustomize would make it."""
    data: dict[str, str] = {}
    binary: dict[str, bytes | str] = {}
    for key, raw in documents.items():
        try:
            data[key] = raw.decode()
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(raw).decode()
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(
            name=name, labels={DOCUMENT_LABEL: "true"} if labelled else None
        ),
        data=data or None,
        binary_data=binary or None,
    )
    core = kubernetes.client.CoreV1Api(api)
    try:
        core.create_namespaced_config_map(namespace, body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, body)


def document_secret(api: Any, namespace: str, name: str, documents: dict[str, bytes]) -> None:
    """Create or replace a Secret holding documents, labelled so that the operator
    watches it."""
    body = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name=name, labels={DOCUMENT_LABEL: "true"}),
        data={k: base64.b64encode(v).decode() for k, v in documents.items()},
    )
    core = kubernetes.client.CoreV1Api(api)
    try:
        core.create_namespaced_secret(namespace, body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, body)


def store(namespace: str, name: str, sops: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": {"sops": sops}},
    }


def aws_identity(namespace: str, endpoint: str) -> dict[str, Any]:
    return {
        "region": AWS_REGION,
        "endpoint": endpoint,
        "role": role(namespace),
        "auth": {"serviceAccount": {"name": "sync"}},
    }


def vault_login(env: DevEnv, namespace: str, server: str | None = None) -> dict[str, Any]:
    return {
        "server": server or env.vault_addr,
        "auth": {"kubernetes": {"role": f"sops-{namespace}", "serviceAccount": {"name": "sync"}}},
    }


def sync(namespace: str, name: str, store_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": store_name}, **spec},
    }
