"""The local environment is the real thing: TokenRequest, OpenBao's kubernetes
auth validated by the apiserver's TokenReview, owner-reference garbage
collection, and moto's Secrets Manager over HTTP."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
from typing import Any

import boto3
import kubernetes
import pytest

from harness import kube
from harness.devenv import DevEnv, bao_request

pytestmark = pytest.mark.integration


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def create_service_account(api: Any, namespace: str, name: str) -> None:
    kubernetes.client.CoreV1Api(api).create_namespaced_service_account(
        namespace,
        kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
    )


def test_token_request_returns_a_token_with_the_audience_and_expiry(
    api: Any, namespace: str
) -> None:
    create_service_account(api, namespace, "team-a-sync")
    before = int(time.time())
    token = kube.token_request(
        api,
        namespace=namespace,
        service_account="team-a-sync",
        audiences=["sts.amazonaws.com"],
        seconds=3600,
    )
    claims = jwt_claims(token)
    assert claims["aud"] == ["sts.amazonaws.com"]
    assert claims["sub"] == f"system:serviceaccount:{namespace}:team-a-sync"
    assert before + 3600 - 5 <= claims["exp"] <= int(time.time()) + 3600 + 5


def test_openbao_kubernetes_login_accepts_the_bound_service_account_only(
    env: DevEnv, api: Any, namespace: str
) -> None:
    create_service_account(api, namespace, "team-a-sync")
    create_service_account(api, namespace, "intruder")
    role = f"auth/kubernetes/role/{namespace}"
    bao_request(
        env.vault_addr,
        env.vault_token,
        "POST",
        role,
        {
            "bound_service_account_names": ["team-a-sync"],
            "bound_service_account_namespaces": [namespace],
            "audience": "vault",
            "token_policies": ["default"],
            "token_ttl": "10m",
        },
    )

    def login(service_account: str) -> Any:
        jwt = kube.token_request(
            api,
            namespace=namespace,
            service_account=service_account,
            audiences=["vault"],
            seconds=600,
        )
        return bao_request(
            env.vault_addr, "", "POST", "auth/kubernetes/login", {"role": namespace, "jwt": jwt}
        )

    auth = login("team-a-sync")["auth"]
    assert auth["client_token"]
    assert auth["metadata"]["service_account_namespace"] == namespace
    assert auth["metadata"]["service_account_name"] == "team-a-sync"
    with pytest.raises(urllib.error.HTTPError) as refused:
        login("intruder")
    assert refused.value.code == 403


def test_openbao_has_kv_v2_mounted_at_secret(env: DevEnv) -> None:
    mounts = bao_request(env.vault_addr, env.vault_token, "GET", "sys/mounts")
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"


@pytest.mark.usefixtures("crds")
def test_secret_owned_by_a_secretsync_is_garbage_collected_with_it(
    api: Any, namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api)
    core = kubernetes.client.CoreV1Api(api)
    owner: Any = custom.create_namespaced_custom_object(
        "secretsync.io",
        "v1alpha1",
        namespace,
        "secretsyncs",
        {
            "apiVersion": "secretsync.io/v1alpha1",
            "kind": "SecretSync",
            "metadata": {"name": "db"},
            "spec": {
                "storeRef": {"name": "aws"},
                "data": [{"secretKey": "k", "remoteRef": {"key": "r"}}],
            },
        },
    )
    core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(
                name="db",
                owner_references=[
                    kubernetes.client.V1OwnerReference(
                        api_version="secretsync.io/v1alpha1",
                        kind="SecretSync",
                        name="db",
                        uid=owner["metadata"]["uid"],
                        controller=True,
                        block_owner_deletion=True,
                    )
                ],
            ),
            string_data={"k": "v"},
        ),
    )
    custom.delete_namespaced_custom_object(
        "secretsync.io", "v1alpha1", namespace, "secretsyncs", "db"
    )

    def gone() -> bool:
        names = [
            s.metadata.name for s in core.list_namespaced_secret(namespace).items if s.metadata
        ]
        return "db" not in names

    kube.eventually(gone, timeout=60, what="the garbage collector to delete the owned Secret")


def test_moto_answers_get_secret_value_and_batch_get_secret_value(env: DevEnv) -> None:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=env.aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    names = [f"env-check/{i}" for i in range(3)]
    for i, name in enumerate(names):
        client.create_secret(Name=name, SecretString=json.dumps({"n": i}))
    assert json.loads(client.get_secret_value(SecretId=names[0])["SecretString"]) == {"n": 0}
    batch = client.batch_get_secret_value(SecretIdList=names)
    assert sorted(v["Name"] for v in batch["SecretValues"]) == names
    assert batch["Errors"] == []
