"""The operator dies (SIGKILL: no shutdown handler runs) at the worst moments, and other
writers fight over its Secrets: it converges, with no lost and no doubled work."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from faults import world
from faults.size import FULL
from harness import faults, scenario, vaultsetup
from harness import operator as op
from harness.audit import AuditLog
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

STATUS_PATCH = r"^PATCH /apis/secretsync\.io/v1alpha1/namespaces/[^/]+/secretsyncs/[^/]+/status"
ROLLOUT = "secretsync.io/data-hash"


def _deployment(api: Any, ns: str, name: str) -> None:
    labels = {"app": name}
    body: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "app"}]},
            },
        },
    }
    kubernetes.client.AppsV1Api(api).create_namespaced_deployment(ns, body)


def _rollout_hash(api: Any, ns: str, name: str) -> str | None:
    obj: Any = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, ns)
    value = (obj.spec.template.metadata.annotations or {}).get(ROLLOUT)
    return str(value) if value is not None else None


def test_sigkill_between_the_secret_write_and_the_status_write_still_restarts_the_workload(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    plane: faults.ControlPlane,
    figures: Callable[..., None],
) -> None:
    ns = world.vault_team(faults_env, faults_api, "crash", server=faults_env.vault_addr)
    first, second = world.value(), world.value()
    faults_values.update({first.encode(), second.encode()})
    vaultsetup.put(faults_env, f"{ns}/db", {"p": first})
    _deployment(faults_api, ns, "api")
    doc = world.sync(ns, "db", f"{ns}/db")
    doc["spec"]["rollout"] = {"restart": [{"kind": "Deployment", "name": "api"}]}
    with op.running(faults_env, faults_log):
        scenario.apply(faults_env, doc)
        scenario.wait_for_reason(faults_api, ns, "db", "Synced")
    hash_before = scenario.get_sync(faults_api, ns, "db")["status"]["dataHash"]
    annotation_before = _rollout_hash(faults_api, ns, "api")

    proxy = faults.apiserver_proxy(faults_env, plane)
    try:
        with op.running(faults_env, faults_log, kubeconfig=proxy.kubeconfig) as proc:
            proxy.refuse(STATUS_PATCH)
            vaultsetup.put(faults_env, f"{ns}/db", {"p": second})
            forced = {"secretsync.io/force-sync": "after-rotation"}
            scenario.apply(
                faults_env, {**doc, "metadata": {**doc["metadata"], "annotations": forced}}
            )
            deadline = time.monotonic() + 30
            while scenario.secret_data(faults_api, ns, "db") != {"value": second.encode()}:
                assert time.monotonic() < deadline, "the Secret was not updated"
                time.sleep(0.2)
            assert faults.kill(proc) == -9  # the status write never happened
            refused = proxy.allow()
    finally:
        proxy.close()
    assert scenario.get_sync(faults_api, ns, "db")["status"]["dataHash"] == hash_before
    restarted = time.monotonic()
    with op.running(faults_env, faults_log):
        synced = scenario.wait_for_reason(faults_api, ns, "db", "Synced")
        assert synced["status"]["dataHash"] != hash_before
        world.wait_for(lambda: _rollout_hash(faults_api, ns, "api") != annotation_before, 30)
        took = time.monotonic() - restarted
        restart = _rollout_hash(faults_api, ns, "api")
        time.sleep(3)  # a second restart would come within the debounce
        assert _rollout_hash(faults_api, ns, "api") == restart, "restarted twice"
    figures(
        "SIGKILL between the Secret write and the status write",
        status_writes_refused=refused,
        status_and_rollout_after_restart_s=round(took, 1),
    )
    assert scenario.secret_data(faults_api, ns, "db") == {"value": second.encode()}


def test_sigkill_during_a_cold_start_loses_and_doubles_nothing(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    count = 1000 if FULL else 300
    ns = world.vault_team(faults_env, faults_api, "cold", server=faults_env.vault_addr)
    keys = max(count // 10, 1)
    for i in range(keys):
        secret = world.value()
        faults_values.add(secret.encode())
        vaultsetup.put(faults_env, f"{ns}/k{i}", {"p": secret})
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    started = time.time()
    with op.running(faults_env, faults_log) as proc:
        world.apply_many(
            faults_env, [world.sync(ns, f"s{i}", f"{ns}/k{i % keys}") for i in range(count)]
        )
        time.sleep(1.0)  # mid-way through the first syncs
        faults.kill(proc)
    partial = len(world.managed_secrets(faults_api, ns))
    with op.running(faults_env, faults_log):
        took = world.wait_all(faults_api, ns, count, timeout=240)
    requests = audit.requests(started, time.time() + 1, namespace_prefix=ns)
    creates: dict[str, int] = {}
    deletes = 0
    for r in requests:
        if r.resource == "secrets" and r.verb == "create" and r.code < 300:
            creates[r.name] = creates.get(r.name, 0) + 1
        deletes += r.resource == "secrets" and r.verb == "delete"
    figures(
        "SIGKILL during a cold start",
        secretsyncs=count,
        secrets_before_the_kill=partial,
        converged_after_restart_s=round(took, 1),
    )
    assert sorted(creates) == sorted(f"s{i}" for i in range(count))
    assert set(creates.values()) == {1}, "a Secret was created twice"
    assert deletes == 0
    assert len(world.managed_secrets(faults_api, ns)) == count


def test_a_conflicting_writer_is_repaired_with_backoff_and_a_409_costs_no_round(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    ns = world.vault_team(faults_env, faults_api, "fight", server=faults_env.vault_addr)
    good = world.value()
    faults_values.add(good.encode())
    vaultsetup.put(faults_env, f"{ns}/db", {"p": good})
    other = faults_env.api_client()
    other.user_agent = "another-controller"  # told apart from the operator in the audit log
    core = kubernetes.client.CoreV1Api(other)
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    with op.running(faults_env, faults_log):
        scenario.apply(faults_env, world.sync(ns, "db", f"{ns}/db"))
        scenario.wait_for_reason(faults_api, ns, "db", "Synced")
        start = time.time()
        fight = 30.0
        ours = 0
        while time.time() - start < fight:  # another controller rewrites it twice a second
            core.patch_namespaced_secret("db", ns, {"data": {"value": "b3RoZXI="}})
            time.sleep(0.5)
        end = time.time()
        world.wait_for(
            lambda: scenario.secret_data(faults_api, ns, "db") == {"value": good.encode()}, 360
        )
        ours = sum(
            1
            for r in audit.requests(start, end, namespace_prefix=ns)
            if r.resource == "secrets" and r.verb == "patch"
        )
        assert scenario.condition(scenario.get_sync(faults_api, ns, "db"))["reason"] == "Synced"
    figures(
        "another writer rewrites a managed Secret twice a second",
        fight_s=fight,
        their_writes=int(fight / 0.5),
        operator_repairs=ours,
    )
    # Three repairs at once, then backoff 2, 4, 8, 16 s: about 8 in 30 s, not 60.
    assert ours <= 10
