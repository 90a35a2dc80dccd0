"""SecretSyncs from OpenBao (the Vault API): per-namespace policies, templates, creation
and deletion policies, force-sync, drift repair, and clear errors for bad input."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import kubernetes
import pytest

from harness import kube, scenario
from harness.devenv import DevEnv
from harness.vaultsetup import bind_namespace, put, sync
from harness.vaultsetup import store as vault_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]


@pytest.fixture
def team(env: DevEnv, api: Any, namespace: str) -> str:
    bind_namespace(env, api, namespace)
    scenario.apply(env, vault_store(env, namespace))
    return namespace


def value(secret_values: set[bytes], label: str) -> str:
    text = f"{label}-{uuid.uuid4().hex}"
    secret_values.add(text.encode())
    return text


def test_store_is_ready_after_a_live_login(api: Any, team: str) -> None:
    cond = scenario.store_ready(api, "SecretStore", team, "vault")
    assert (cond["status"], cond["reason"]) == ("True", "Valid")
    assert "vault:kubernetes" in cond["message"]


def test_a_namespace_reads_its_own_paths_and_is_denied_another_namespaces(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    mine = value(secret_values, "mine")
    theirs = value(secret_values, "theirs")
    put(env, f"{team}/db", {"password": mine})
    put(env, f"other-{team}/db", {"password": theirs})
    scenario.apply(
        env,
        sync(
            team,
            "own",
            {
                "data": [
                    {"secretKey": "p", "remoteRef": {"key": f"{team}/db", "property": "password"}}
                ]
            },
        ),
        sync(
            team,
            "steal",
            {
                "data": [
                    {
                        "secretKey": "p",
                        "remoteRef": {"key": f"other-{team}/db", "property": "password"},
                    }
                ]
            },
        ),
    )
    scenario.wait_for_reason(api, team, "own", "Synced")
    assert scenario.secret_data(api, team, "own") == {"p": mine.encode()}
    denied = scenario.wait_for_reason(api, team, "steal", "AccessDenied")
    assert scenario.condition(denied)["status"] == "False"
    assert scenario.secret(api, team, "steal") is None


def test_template_renders_the_fetched_values(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    password = value(secret_values, "pw")
    put(env, f"{team}/db", {"username": "app", "password": password})
    scenario.apply(
        env,
        sync(
            team,
            "dsn",
            {
                "dataFrom": [{"extract": {"key": f"{team}/db"}}],
                "target": {
                    "template": {
                        "data": {"DSN": "postgres://{{ username }}:{{ password }}@db:5432/app"}
                    }
                },
            },
        ),
    )
    scenario.wait_for_reason(api, team, "dsn", "Synced")
    assert scenario.secret_data(api, team, "dsn") == {
        "DSN": f"postgres://app:{password}@db:5432/app".encode()
    }


def test_merge_writes_only_our_keys_into_an_existing_secret(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    token = value(secret_values, "token")
    put(env, f"{team}/token", {"token": token})
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        team,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="shared"),
            string_data={"unrelated": "keep-me"},
        ),
    )
    scenario.apply(
        env,
        sync(
            team,
            "merge",
            {
                "target": {"name": "shared", "creationPolicy": "Merge"},
                "data": [
                    {
                        "secretKey": "token",
                        "remoteRef": {"key": f"{team}/token", "property": "token"},
                    }
                ],
            },
        ),
    )
    scenario.wait_for_reason(api, team, "merge", "Synced")
    assert scenario.secret_data(api, team, "shared") == {
        "unrelated": b"keep-me",
        "token": token.encode(),
    }


def test_orphan_secrets_outlive_their_secretsync_and_owned_ones_do_not(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    put(env, f"{team}/x", {"v": value(secret_values, "x")})
    spec = {"data": [{"secretKey": "v", "remoteRef": {"key": f"{team}/x", "property": "v"}}]}
    scenario.apply(
        env,
        sync(team, "orphan", {**spec, "target": {"creationPolicy": "Orphan"}}),
        sync(team, "owned", spec),
    )
    scenario.wait_for_reason(api, team, "orphan", "Synced")
    scenario.wait_for_reason(api, team, "owned", "Synced")
    assert not scenario.secret(api, team, "orphan").metadata.owner_references
    env.kubectl("delete", "secretsyncs.secretsync.io", "orphan", "owned", "-n", team)
    kube.eventually(
        lambda: scenario.secret(api, team, "owned") is None,
        timeout=60,
        what="GC of the owned Secret",
    )
    assert scenario.secret(api, team, "orphan") is not None


def test_drift_is_repaired_promptly(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    good = value(secret_values, "good")
    put(env, f"{team}/drift", {"v": good})
    scenario.apply(
        env,
        sync(
            team,
            "drift",
            {"data": [{"secretKey": "v", "remoteRef": {"key": f"{team}/drift", "property": "v"}}]},
        ),
    )
    scenario.wait_for_reason(api, team, "drift", "Synced")
    core = kubernetes.client.CoreV1Api(api)
    core.patch_namespaced_secret(
        "drift", team, {"data": {"v": base64.b64encode(b"tampered").decode()}}
    )
    kube.eventually(
        lambda: scenario.secret_data(api, team, "drift") == {"v": good.encode()},
        timeout=20,
        what="the edited Secret to be restored",
    )
    core.delete_namespaced_secret("drift", team)
    kube.eventually(
        lambda: scenario.secret_data(api, team, "drift") == {"v": good.encode()},
        timeout=20,
        what="the deleted Secret to be recreated",
    )


def test_refresh_interval_zero_syncs_once(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    first = value(secret_values, "first")
    put(env, f"{team}/once", {"v": first})
    scenario.apply(
        env,
        sync(
            team,
            "once",
            {
                "refreshInterval": "0",
                "data": [{"secretKey": "v", "remoteRef": {"key": f"{team}/once", "property": "v"}}],
            },
        ),
    )
    scenario.wait_for_reason(api, team, "once", "Synced")
    put(env, f"{team}/once", {"v": value(secret_values, "second")})
    time.sleep(3)
    assert scenario.secret_data(api, team, "once") == {"v": first.encode()}


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        (
            {"data": [{"secretKey": "v", "remoteRef": {"key": "{ns}/bad", "property": "nope"}}]},
            "InvalidSpec",
            "spec.data[0]: property 'nope' does not exist in remote secret '{ns}/bad'",
        ),
        (
            {
                "data": [
                    {"secretKey": "user", "remoteRef": {"key": "{ns}/bad", "property": "user"}}
                ],
                "dataFrom": [{"extract": {"key": "{ns}/bad"}}],
            },
            "InvalidSpec",
            "Secret key 'user' comes from both spec.data[0] and spec.dataFrom[0]",
        ),
        (
            {
                "dataFrom": [{"extract": {"key": "{ns}/bad"}}],
                "target": {"template": {"data": {"x": "line one\n{{ user "}}},
            },
            "InvalidSpec",
            "spec.target.template.data['x']: syntax error at line 2",
        ),
        (
            {"dataFrom": [{"extract": {"key": "{ns}/big"}}]},
            "InvalidSpec",
            "over the 1 MiB Secret limit",
        ),
        (
            {"data": [{"secretKey": "v", "remoteRef": {"key": "{ns}/missing"}}]},
            "NotFound",
            "{ns}/missing",
        ),
        (
            {"dataFrom": [{"extract": {"key": "{ns}/slashed"}}]},
            "InvalidSpec",
            "spec.dataFrom[0]: JSON key number 1 (11 characters) of remote secret '{ns}/slashed' "
            "is not a valid Secret key",
        ),
    ],
    ids=["missing-property", "duplicate-key", "template-error", "too-big", "not-found", "bad-key"],
)
def test_bad_input_is_reported_on_the_status_naming_the_field(
    env: DevEnv, api: Any, team: str, spec: dict[str, Any], reason: str, message: str
) -> None:
    put(env, f"{team}/bad", {"user": "app", "password": "pw-not-leaked-1"})
    put(env, f"{team}/big", {f"k{i}": "x" * 200_000 for i in range(6)})
    put(env, f"{team}/slashed", {"db/password": "pw-not-leaked-2"})
    resolved = json.loads(json.dumps(spec).replace("{ns}", team))
    scenario.apply(env, sync(team, "bad", resolved))
    obj = scenario.wait_for_reason(api, team, "bad", reason)
    assert message.replace("{ns}", team) in scenario.condition(obj)["message"]
    assert scenario.secret(api, team, "bad") is None


def test_missing_store_and_missing_service_account_are_reported(
    env: DevEnv, api: Any, namespace: str
) -> None:
    spec = {"data": [{"secretKey": "v", "remoteRef": {"key": "k"}}]}
    scenario.apply(env, sync(namespace, "nostore", spec, store="absent"))
    obj = scenario.wait_for_reason(api, namespace, "nostore", "StoreNotReady")
    assert (
        f"SecretStore 'absent' does not exist in namespace {namespace}"
        in scenario.condition(obj)["message"]
    )
    scenario.apply(env, vault_store(env, namespace))  # no ServiceAccount `sync` here
    scenario.apply(env, sync(namespace, "nosa", spec))
    obj = scenario.wait_for_reason(api, namespace, "nosa", "AuthFailed")
    assert f"ServiceAccount {namespace}/sync" in scenario.condition(obj)["message"]


def test_cluster_store_authenticates_as_each_namespace_and_honours_its_conditions(
    env: DevEnv, api: Any, namespace: str, secret_values: set[bytes]
) -> None:
    bind_namespace(env, api, namespace)
    store_name = f"shared-{namespace}"
    store = vault_store(env, namespace, kind="ClusterSecretStore", name=store_name)
    # The role name is per namespace in this test setup; a cluster store names one role,
    # so bind it to this namespace and list it in the conditions.
    store["spec"]["conditions"] = [{"namespaces": [namespace]}]
    scenario.apply(env, store)
    try:
        secret = value(secret_values, "cluster")
        put(env, f"{namespace}/c", {"v": secret})
        spec = {
            "data": [{"secretKey": "v", "remoteRef": {"key": f"{namespace}/c", "property": "v"}}]
        }
        scenario.apply(
            env, sync(namespace, "viacluster", spec, store=store_name, kind="ClusterSecretStore")
        )
        scenario.wait_for_reason(api, namespace, "viacluster", "Synced")
        assert scenario.secret_data(api, namespace, "viacluster") == {"v": secret.encode()}
        other = f"{namespace}-x"
        kubernetes.client.CoreV1Api(api).create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=other))
        )
        try:
            scenario.apply(
                env, sync(other, "refused", spec, store=store_name, kind="ClusterSecretStore")
            )
            obj = scenario.wait_for_reason(api, other, "refused", "NamespaceNotAllowed")
            assert f"does not allow namespace '{other}'" in scenario.condition(obj)["message"]
        finally:
            kubernetes.client.CoreV1Api(api).delete_namespace(other)
    finally:
        env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, store_name)


def test_changing_the_creation_policy_never_takes_over_or_keeps_a_wrong_owner(
    env: DevEnv, api: Any, team: str, secret_values: set[bytes]
) -> None:
    token = value(secret_values, "policy")
    put(env, f"{team}/p", {"token": token})
    data = [{"secretKey": "token", "remoteRef": {"key": f"{team}/p", "property": "token"}}]
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        team,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="theirs"),
            string_data={"unrelated": "keep-me"},
        ),
    )
    merge = {"target": {"name": "theirs", "creationPolicy": "Merge"}, "data": data}
    scenario.apply(env, sync(team, "merger", merge), sync(team, "owned", {"data": data}))
    scenario.wait_for_reason(api, team, "merger", "Synced")
    scenario.wait_for_reason(api, team, "owned", "Synced")

    # Merge -> Owner: the user's Secret is not ours to own, rewrite or delete.
    scenario.apply(env, sync(team, "merger", {**merge, "target": {"name": "theirs"}}))
    refused = scenario.wait_for_reason(api, team, "merger", "InvalidSpec")
    assert (
        "already exists and is not managed by this SecretSync"
        in scenario.condition(refused)["message"]
    )
    assert scenario.secret_data(api, team, "theirs") == {
        "unrelated": b"keep-me",
        "token": token.encode(),
    }

    # Owner -> Orphan: the ownerReference goes, so deleting the SecretSync keeps the Secret.
    scenario.apply(env, sync(team, "owned", {"data": data, "target": {"creationPolicy": "Orphan"}}))
    kube.eventually(
        lambda: not scenario.secret(api, team, "owned").metadata.owner_references,
        timeout=30,
        what="the ownerReference to be removed",
    )
    env.kubectl("delete", "secretsyncs.secretsync.io", "owned", "-n", team)
    time.sleep(3)
    assert scenario.secret_data(api, team, "owned") == {"token": token.encode()}
