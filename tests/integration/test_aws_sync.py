"""SecretSyncs from AWS Secrets Manager and SSM Parameter Store, read as each namespace's
own role, through a recording proxy in front of moto."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any, cast

import boto3
import kubernetes
import pytest

from harness import kube, scenario
from harness.awsproxy import AwsRecordingProxy
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

ACCOUNT = "123456789012"


def role(namespace: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{namespace}-reader"


def client(env: DevEnv, service: str) -> Any:
    # Any: boto3's stubs only accept a literal service name.
    return cast(Any, boto3).client(
        service,
        endpoint_url=env.aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def aws_store(
    namespace: str, endpoint: str, *, service: str = "SecretsManager", name: str = "aws"
) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": {
                "aws": {
                    "service": service,
                    "region": "eu-west-1",
                    "endpoint": endpoint,
                    "role": role(namespace),
                    "auth": {"serviceAccount": {"name": "sync"}},
                }
            }
        },
    }


def sync(namespace: str, name: str, spec: dict[str, Any], store: str = "aws") -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": store}, **spec},
    }


@pytest.fixture
def team(env: DevEnv, api: Any, aws: AwsRecordingProxy, namespace: str) -> str:
    """A namespace with its ServiceAccount and a SecretStore for Secrets Manager."""
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, aws_store(namespace, aws.url))
    return namespace


def test_secrets_manager_values_sync_into_an_owned_secret(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    sm = client(env, "secretsmanager")
    password = f"pw-{uuid.uuid4().hex}"
    api_key = f"key-{uuid.uuid4().hex}"
    secret_values.update({password.encode(), api_key.encode()})
    sm.create_secret(
        Name=f"{team}/db", SecretString=json.dumps({"username": "app", "password": password})
    )
    sm.create_secret(Name=f"{team}/api-key", SecretString=api_key)
    sm.create_secret(
        Name=f"{team}/conn", SecretString=json.dumps({"username": "app", "port": 5432})
    )
    scenario.apply(
        env,
        sync(
            team,
            "db",
            {
                "target": {"name": "db-credentials", "labels": {"tier": "backend"}},
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": f"{team}/db", "property": "password"},
                    },
                    {"secretKey": "api-key", "remoteRef": {"key": f"{team}/api-key"}},
                ],
                "dataFrom": [{"extract": {"key": f"{team}/conn"}}],
            },
        ),
    )
    obj = scenario.wait_for_reason(api, team, "db", "Synced")
    assert scenario.secret_data(api, team, "db-credentials") == {
        "password": password.encode(),
        "api-key": api_key.encode(),
        "username": b"app",
        "port": b"5432",
    }
    secret = scenario.secret(api, team, "db-credentials")
    assert [(o.kind, o.name, o.uid, o.controller) for o in secret.metadata.owner_references] == [
        ("SecretSync", "db", obj["metadata"]["uid"], True)
    ]
    assert secret.metadata.labels == {
        "tier": "backend",
        "app.kubernetes.io/managed-by": "secretsync",
    }
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert set(status["syncedVersions"]) == {f"{team}/db", f"{team}/api-key", f"{team}/conn"}
    assert status["dataHash"].startswith("hmac-sha256:")
    assert status["lastSyncTime"]
    reasons = kube.eventually(
        lambda: [e.reason for e in scenario.events_for(api, team, "db")] or None,
        timeout=10,
        what="an Event",
    )
    assert "Created" in reasons


def test_each_namespace_reads_as_its_own_role_with_its_own_service_account_token(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, team: str, secret_values: set[bytes]
) -> None:
    other = f"{team}-b"
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=other))
    )
    try:
        scenario.service_account(api, other, "sync")
        scenario.apply(env, aws_store(other, aws.url))
        sm = client(env, "secretsmanager")
        for ns in (team, other):
            value = f"{ns}-{uuid.uuid4().hex}"
            secret_values.add(value.encode())
            sm.create_secret(Name=f"{ns}/token", SecretString=value)
        before = len(aws.snapshot())
        for ns in (team, other):
            scenario.apply(
                env,
                sync(
                    ns, "token", {"data": [{"secretKey": "t", "remoteRef": {"key": f"{ns}/token"}}]}
                ),
            )
        for ns in (team, other):
            scenario.wait_for_reason(api, ns, "token", "Synced")
        calls = aws.snapshot()[before:]
        roles = aws.roles_by_access_key()

        # The store check of `team` may have logged in before this test began: look at
        # every login for these two roles.
        ours = {role(team), role(other)}
        logins = [
            c
            for c in aws.snapshot()
            if c.action == "AssumeRoleWithWebIdentity"
            and urllib.parse.parse_qs(c.body.decode()).get("RoleArn", [""])[0] in ours
        ]
        subjects = set()
        for call in logins:
            assert call.web_identity_token, "AssumeRoleWithWebIdentity without a token"
            payload = call.web_identity_token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            assert claims["aud"] == ["sts.amazonaws.com"]
            subjects.add(claims["sub"])
        assert subjects == {f"system:serviceaccount:{ns}:sync" for ns in (team, other)}

        reads = [c for c in calls if c.action in ("BatchGetSecretValue", "GetSecretValue")]
        assert reads, "no secret reads were recorded"
        for call in reads:
            body = json.loads(call.body)
            ids = body.get("SecretIdList") or [body.get("SecretId")]
            namespaces = {i.split("/")[0] for i in ids}
            assert len(namespaces) == 1, f"one read mixed namespaces: {ids}"
            assert roles.get(call.access_key or "") == role(namespaces.pop())
    finally:
        core.delete_namespace(other)


def test_unchanged_refreshes_write_nothing(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, team: str, secret_values: set[bytes]
) -> None:
    value = f"steady-{uuid.uuid4().hex}"
    secret_values.add(value.encode())
    client(env, "secretsmanager").create_secret(Name=f"{team}/steady", SecretString=value)
    scenario.apply(
        env,
        sync(
            team,
            "steady",
            {
                "refreshInterval": "2s",
                "data": [{"secretKey": "v", "remoteRef": {"key": f"{team}/steady"}}],
            },
        ),
    )
    scenario.wait_for_reason(api, team, "steady", "Synced")
    time.sleep(1)
    sync_rv = scenario.get_sync(api, team, "steady")["metadata"]["resourceVersion"]
    secret_rv = scenario.secret(api, team, "steady").metadata.resource_version
    reads_before = aws.actions().count("BatchGetSecretValue")
    logins_before = aws.actions().count("AssumeRoleWithWebIdentity")
    time.sleep(7)  # three refresh cycles
    assert aws.actions().count("BatchGetSecretValue") >= reads_before + 2, "no refresh happened"
    assert aws.actions().count("AssumeRoleWithWebIdentity") == logins_before, (
        "a refresh logged in again: sessions are cached per identity"
    )
    assert scenario.get_sync(api, team, "steady")["metadata"]["resourceVersion"] == sync_rv
    assert scenario.secret(api, team, "steady").metadata.resource_version == secret_rv


@pytest.fixture
def flaky_endpoint(env: DevEnv) -> Iterator[AwsRecordingProxy]:
    """A proxy of its own, so taking it down affects only this test's store."""
    proxy = AwsRecordingProxy(env.aws_endpoint)
    yield proxy
    proxy.stop()


def test_provider_outage_keeps_the_last_good_secret_and_recovers(
    env: DevEnv,
    api: Any,
    namespace: str,
    flaky_endpoint: AwsRecordingProxy,
    secret_values: set[bytes],
) -> None:
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, aws_store(namespace, flaky_endpoint.url))
    value = f"keep-{uuid.uuid4().hex}"
    secret_values.add(value.encode())
    client(env, "secretsmanager").create_secret(Name=f"{namespace}/keep", SecretString=value)
    scenario.apply(
        env,
        sync(
            namespace,
            "keep",
            {
                "refreshInterval": "1h",
                "data": [{"secretKey": "v", "remoteRef": {"key": f"{namespace}/keep"}}],
            },
        ),
    )
    scenario.wait_for_reason(api, namespace, "keep", "Synced")
    flaky_endpoint.stop()
    force_sync(api, namespace, "keep")
    down = scenario.wait_for_reason(api, namespace, "keep", "ProviderUnavailable")
    assert scenario.condition(down)["status"] == "False"
    assert scenario.secret_data(api, namespace, "keep") == {"v": value.encode()}
    flaky_endpoint.start()
    scenario.wait_for_reason(api, namespace, "keep", "Synced", timeout=90)
    assert scenario.secret_data(api, namespace, "keep") == {"v": value.encode()}


def force_sync(api: Any, namespace: str, name: str) -> None:
    kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
        scenario.GROUP,
        scenario.VERSION,
        namespace,
        "secretsyncs",
        name,
        {"metadata": {"annotations": {"secretsync.io/force-sync": uuid.uuid4().hex}}},
    )


def test_binary_secrets_round_trip_byte_for_byte(env: DevEnv, api: Any, team: str) -> None:
    raw = bytes(range(256)) * 4
    client(env, "secretsmanager").create_secret(Name=f"{team}/cert", SecretBinary=raw)
    scenario.apply(
        env,
        sync(
            team,
            "cert",
            {"data": [{"secretKey": "cert.der", "remoteRef": {"key": f"{team}/cert"}}]},
        ),
    )
    scenario.wait_for_reason(api, team, "cert", "Synced")
    assert scenario.secret_data(api, team, "cert") == {"cert.der": raw}


def test_rotation_reaches_the_secret_on_force_sync_and_deletion_policy_applies(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    sm = client(env, "secretsmanager")
    first, second = (f"v{i}-{uuid.uuid4().hex}" for i in (1, 2))
    secret_values.update({first.encode(), second.encode()})
    sm.create_secret(Name=f"{team}/rotating", SecretString=first)
    scenario.apply(
        env,
        sync(
            team,
            "rotating",
            {
                "target": {"deletionPolicy": "Delete"},
                "data": [{"secretKey": "v", "remoteRef": {"key": f"{team}/rotating"}}],
            },
        ),
    )
    scenario.wait_for_reason(api, team, "rotating", "Synced")
    sm.put_secret_value(SecretId=f"{team}/rotating", SecretString=second)
    force_sync(api, team, "rotating")
    kube.eventually(
        lambda: scenario.secret_data(api, team, "rotating") == {"v": second.encode()},
        timeout=30,
        what="the rotated value",
    )
    reasons = kube.eventually(
        lambda: "Updated" in [e.reason for e in scenario.events_for(api, team, "rotating")],
        timeout=10,
        what="an Updated Event",
    )
    assert reasons
    sm.delete_secret(SecretId=f"{team}/rotating", ForceDeleteWithoutRecovery=True)
    force_sync(api, team, "rotating")
    scenario.wait_for_reason(api, team, "rotating", "RemoteDeleted")
    assert scenario.secret(api, team, "rotating") is None


def test_parameter_store_values_and_find_by_path(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, namespace: str, secret_values: set[bytes]
) -> None:
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, aws_store(namespace, aws.url, service="ParameterStore", name="ssm"))
    ssm = client(env, "ssm")
    values = {name: f"{name}-{uuid.uuid4().hex}" for name in ("db-password", "api-token")}
    secret_values.update(v.encode() for v in values.values())
    for name, value in values.items():
        ssm.put_parameter(Name=f"/{namespace}/app/{name}", Value=value, Type="SecureString")
    ssm.put_parameter(Name=f"/{namespace}/region", Value="eu-west-1", Type="String")
    scenario.apply(
        env,
        sync(
            namespace,
            "app",
            {
                "data": [{"secretKey": "region", "remoteRef": {"key": f"/{namespace}/region"}}],
                "dataFrom": [{"find": {"path": f"/{namespace}/app/"}}],
            },
            store="ssm",
        ),
    )
    scenario.wait_for_reason(api, namespace, "app", "Synced")
    data = scenario.secret_data(api, namespace, "app")
    assert data == {
        "region": b"eu-west-1",
        f"{namespace}_app_db-password": values["db-password"].encode(),
        f"{namespace}_app_api-token": values["api-token"].encode(),
    }


def test_one_refresh_of_many_syncs_is_one_batched_deduplicated_read(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, team: str, secret_values: set[bytes]
) -> None:
    """25 SecretSyncs reading 2 keys each over 30 unique keys, through one identity:
    a refresh costs ceil(30/20) = 2 BatchGetSecretValue calls, no login, no writes."""
    sm = client(env, "secretsmanager")
    keys = [f"{team}/shared-{i}" for i in range(30)]
    for key in keys:
        value = f"{key}-{uuid.uuid4().hex}"
        secret_values.add(value.encode())
        sm.create_secret(Name=key, SecretString=value)
    syncs = [
        sync(
            team,
            f"many-{i}",
            {
                "refreshInterval": "4s",
                "data": [
                    {"secretKey": "a", "remoteRef": {"key": keys[i]}},
                    {"secretKey": "b", "remoteRef": {"key": keys[(i + 5) % 30]}},
                ],
            },
        )
        for i in range(25)
    ]
    scenario.apply(env, *syncs)
    for i in range(25):
        scenario.wait_for_reason(api, team, f"many-{i}", "Synced")
    time.sleep(5)  # past the first aligned refresh, so the next ones are steady state
    start = len(aws.snapshot())
    time.sleep(8.2)  # two refresh cycles of 4s
    calls = [c for c in aws.snapshot()[start:] if any(k.encode() in c.body for k in keys)]
    assert {c.action for c in calls} == {"BatchGetSecretValue"}, "only batched reads"
    rounds: list[list[Any]] = []
    for call in calls:  # a refresh round is a burst of calls; rounds are 4 s apart
        if not rounds or call.at - rounds[-1][-1].at > 1.0:
            rounds.append([])
        rounds[-1].append(call)
    assert len(rounds) >= 2, "fewer than two refreshes were seen"
    for burst in rounds:
        ids = [i for c in burst for i in json.loads(c.body)["SecretIdList"]]
        assert len(burst) == 2, f"a refresh made {len(burst)} calls"
        assert sorted(ids) == sorted(keys), "each key read once per refresh"
