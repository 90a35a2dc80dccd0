"""Cheap change detection (OpenBao KV v2 metadata) and rollout restarts of workloads,
once per real change. The module runs operators of its own (one can be restarted), so
it does not use the shared `operator` fixture."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from harness import kube, scenario
from harness import operator as op
from harness.awsproxy import AwsRecordingProxy
from harness.devenv import DevEnv
from harness.vaultsetup import bind_namespace, put, sync
from harness.vaultsetup import store as vault_store

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


@pytest.fixture
def bao_proxy(env: DevEnv) -> Iterator[AwsRecordingProxy]:
    """A recording proxy in front of OpenBao: every request the operator sends."""
    proxy = AwsRecordingProxy(env.vault_addr)
    yield proxy
    proxy.stop()


@pytest.fixture
def own_operator(env: DevEnv, namespace: str, operator_log: Path) -> Iterator[Path]:
    """An operator of this test's own, watching only its namespace."""
    with op.running(env, operator_log, "--namespace", namespace):
        yield operator_log


def value_reads(proxy: AwsRecordingProxy, path: str) -> int:
    return sum(
        1
        for c in proxy.snapshot()
        if c.method == "GET" and c.path.startswith(f"/v1/secret/data/{path}")
    )


def test_a_new_kv2_version_is_picked_up_within_the_change_check_interval_reading_only_it(
    env: DevEnv,
    api: Any,
    namespace: str,
    bao_proxy: AwsRecordingProxy,
    own_operator: Path,
    secret_values: set[bytes],
) -> None:
    bind_namespace(env, api, namespace)
    store = vault_store(env, namespace)
    store["spec"]["provider"]["vault"]["server"] = bao_proxy.url
    store["spec"]["changeCheckInterval"] = "2s"
    scenario.apply(env, store)
    names = ["a", "b", "c"]
    for name in names:
        value = f"{name}-{uuid.uuid4().hex}"
        secret_values.add(value.encode())
        put(env, f"{namespace}/{name}", {"v": value})
    scenario.apply(
        env,
        *(
            sync(
                namespace,
                name,
                {
                    "refreshInterval": "1h",
                    "data": [
                        {
                            "secretKey": "v",
                            "remoteRef": {"key": f"{namespace}/{name}", "property": "v"},
                        }
                    ],
                },
            )
            for name in names
        ),
    )
    for name in names:
        scenario.wait_for_reason(api, namespace, name, "Synced")
    time.sleep(4.5)  # two change checks with nothing changed
    before = {name: value_reads(bao_proxy, f"{namespace}/{name}") for name in names}
    assert any(
        c.path.startswith(f"/v1/secret/metadata/{namespace}/") for c in bao_proxy.snapshot()
    ), "no change check read metadata"
    new = f"new-{uuid.uuid4().hex}"
    secret_values.add(new.encode())
    put(env, f"{namespace}/b", {"v": new})
    changed_at = time.monotonic()
    kube.eventually(
        lambda: scenario.secret_data(api, namespace, "b") == {"v": new.encode()},
        timeout=15,
        what="the new version in the Secret",
    )
    assert time.monotonic() - changed_at < 2 + 3, "not picked up within the change-check interval"
    time.sleep(2.5)
    after = {name: value_reads(bao_proxy, f"{namespace}/{name}") for name in names}
    assert after["b"] == before["b"] + 1, "the changed key is read once"
    assert (after["a"], after["c"]) == (before["a"], before["c"]), "unchanged keys are not read"


def restart_annotation(api: Any, namespace: str, name: str) -> tuple[str | None, int]:
    dep: Any = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    annotations = dep.spec.template.metadata.annotations or {}
    return annotations.get("secretsync.io/data-hash"), int(dep.metadata.generation)


def test_a_workload_restarts_once_per_real_change_and_never_otherwise(
    env: DevEnv, api: Any, namespace: str, operator_log: Path, secret_values: set[bytes]
) -> None:
    bind_namespace(env, api, namespace)
    scenario.apply(env, vault_store(env, namespace), scenario.deployment(namespace, "api"))
    for name in ("db", "cache"):
        value = f"{name}-{uuid.uuid4().hex}"
        secret_values.add(value.encode())
        put(env, f"{namespace}/{name}", {"v": value})
    feeds = [
        sync(
            namespace,
            name,
            {
                "refreshInterval": "2s",
                "data": [
                    {"secretKey": "v", "remoteRef": {"key": f"{namespace}/{name}", "property": "v"}}
                ],
                "rollout": {
                    "restart": [
                        {"kind": "Deployment", "name": "api"},
                        {"kind": "Deployment", "name": "ghost"},
                    ]
                },
            },
        )
        for name in ("db", "cache")
    ]
    with op.running(env, operator_log, "--namespace", namespace):
        scenario.apply(env, *feeds)
        for name in ("db", "cache"):
            scenario.wait_for_reason(api, namespace, name, "Synced")
        time.sleep(3)
        first = restart_annotation(api, namespace, "api")
        assert first[0] is None, "creating the Secret restarted the workload"

        # Both feeds change together: one restart, not two.
        for name in ("db", "cache"):
            value = f"{name}-2-{uuid.uuid4().hex}"
            secret_values.add(value.encode())
            put(env, f"{namespace}/{name}", {"v": value})
        kube.eventually(
            lambda: restart_annotation(api, namespace, "api")[0] is not None,
            timeout=20,
            what="the restart annotation",
        )
        time.sleep(2)  # past the debounce: a second restart would show now
        changed = restart_annotation(api, namespace, "api")
        assert changed[1] == first[1] + 1, "one change of both feeds made more than one rollout"
        obj = scenario.get_sync(api, namespace, "db")
        rollout = next(c for c in obj["status"]["conditions"] if c["type"] == "Rollout")
        assert rollout["status"] == "False"
        assert "Deployment ghost does not exist" in rollout["message"]
        assert scenario.condition(obj)["status"] == "True", "a missing workload is not fatal"
        time.sleep(5)  # unchanged refreshes
        assert restart_annotation(api, namespace, "api") == changed

    with op.running(env, operator_log, "--namespace", namespace):  # an operator restart
        time.sleep(6)
        assert restart_annotation(api, namespace, "api") == changed
