"""The Helm chart on a real apiserver: `helm install` (no Pod ever runs here, so the
operator runs as a local process with the Deployment's own arguments and a kubeconfig
holding the chart's ServiceAccount token), a SecretSync synced end to end with only the
chart's RBAC, the probes' endpoint, what the operator writes (status only, kstatus
style), Argo CD's health script on live objects, and two replicas of which one acts."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from harness import delivery, kube, scenario
from harness import operator as op
from harness.devenv import REPO, DevEnv
from harness.processes import free_port, http_ok
from secretsync.engine import hashing

pytestmark = pytest.mark.integration

HEALTH_SCRIPT = REPO / "docs" / "install" / "argocd" / "health.lua"
# Set to a folder to (re)capture the live objects tests/unit/test_argocd_health.py runs on.
CAPTURE = os.environ.get("SECRETSYNC_CAPTURE_ARGOCD_FIXTURES")


class Release:
    """The chart installed cluster-wide (the default values) in a namespace of its own."""

    def __init__(self, env: DevEnv, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.env = env
        self.name = f"chart-{suffix}"
        self.namespace = f"secretsync-{suffix}"
        self.objects = delivery.install(env, self.name, self.namespace)
        self.service_account = delivery.find(self.objects, "ServiceAccount")["metadata"]["name"]
        self.kubeconfig = delivery.service_account_kubeconfig(
            env, self.namespace, self.service_account, workdir / "sa.kubeconfig"
        )
        self.workdir = workdir

    def run_args(self, *, health_port: int = 0) -> list[str]:
        """The Deployment's arguments, with the ports moved off the fixed ones (several
        operators share this machine)."""
        return [
            *delivery.run_args(self.objects),
            "--metrics-port",
            "0",
            "--health-port",
            str(health_port),
        ]

    def operator(self, log: Path, *, pod: str = "pod-a", health_port: int = 0) -> Any:
        """The operator as a Pod of the Deployment would run it: its arguments, POD_* from
        the downward API, and the ServiceAccount's token instead of the admin's."""
        return op.running(
            self.env,
            log,
            *self.run_args(health_port=health_port),
            kubeconfig=self.kubeconfig,
            extra_env={"POD_NAMESPACE": self.namespace, "POD_ID": f"{self.name}-{pod}"},
        )


@pytest.fixture(scope="module")
def release(delivery_env: DevEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    rel = Release(delivery_env, tmp_path_factory.mktemp("chart"))
    yield rel
    delivery.uninstall(delivery_env, rel.name, rel.namespace)
    delivery.delete_namespace(delivery_env, rel.namespace)


@pytest.fixture
def team(delivery_env: DevEnv) -> Iterator[str]:
    """A namespace syncing from OpenBao as its own `sync` ServiceAccount."""
    namespace = f"team-{uuid.uuid4().hex[:8]}"
    delivery.vault_team(delivery_env, namespace)
    yield namespace
    delivery.delete_namespace(delivery_env, namespace)


def _value(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def _custom(env: DevEnv) -> Any:
    return kubernetes.client.CustomObjectsApi(env.api_client())


def _store(env: DevEnv, kind: str, namespace: str, name: str) -> dict[str, Any]:
    plural = {"SecretStore": "secretstores", "ClusterSecretStore": "clustersecretstores"}[kind]
    custom = _custom(env)
    obj = (
        custom.get_namespaced_custom_object(
            scenario.GROUP, scenario.VERSION, namespace, plural, name
        )
        if namespace
        else custom.get_cluster_custom_object(scenario.GROUP, scenario.VERSION, plural, name)
    )
    return dict(obj)


def _lua_health(obj: dict[str, Any]) -> tuple[str, str]:
    from lupa.lua51 import LuaRuntime  # Argo CD runs Lua 5.1 (gopher-lua)

    lua = LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH_SCRIPT.read_text())
    return str(hs["status"]), str(hs["message"])


def _kstatus(obj: dict[str, Any]) -> str:
    """kstatus' verdict for a custom resource (the rules Flux's health checks apply):
    Terminating when deleting; InProgress while status.observedGeneration lags
    metadata.generation; Reconciling=True is InProgress and Stalled=True is Failed;
    then a Ready condition decides (True: Current; otherwise InProgress); without any,
    Current."""
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if status.get("observedGeneration", meta["generation"]) != meta["generation"]:
        return "InProgress"
    conditions = {c["type"]: c for c in status.get("conditions") or ()}
    if conditions.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if conditions.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if "Ready" in conditions:
        return "Current" if conditions["Ready"]["status"] == "True" else "InProgress"
    return "Current"


def _capture(name: str, expected: str, obj: dict[str, Any]) -> None:
    """Keep a live object for the unit test: what Argo CD would see, minus bookkeeping."""
    if not CAPTURE:
        return
    meta = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {k: meta[k] for k in ("name", "namespace", "generation") if k in meta},
        "spec": obj.get("spec"),
        **({"status": obj["status"]} if "status" in obj else {}),
    }
    path = Path(CAPTURE) / f"{name}.json"
    path.write_text(json.dumps({"expected": expected, "object": kept}, indent=2) + "\n")


# --- the install --------------------------------------------------------------------------


def test_helm_install_creates_the_crds_and_every_operator_object(release: Release) -> None:
    env = release.env
    env.wait_established(
        "secretsyncs.secretsync.io",
        "secretstores.secretsync.io",
        "clustersecretstores.secretsync.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        timeout=30,
    )
    listed = env.kubectl(
        "get",
        "deployment,serviceaccount,service,poddisruptionbudget",
        "--namespace",
        release.namespace,
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "name",
    ).stdout.split()
    name = delivery.find(release.objects, "Deployment")["metadata"]["name"]
    assert sorted(listed) == sorted(
        [
            f"deployment.apps/{name}",
            f"serviceaccount/{name}",
            f"service/{name}",
            f"poddisruptionbudget.policy/{name}",
        ]
    )
    cluster = env.kubectl(
        "get",
        "clusterrole,clusterrolebinding,clusterkopfpeering",
        "-l",
        f"app.kubernetes.io/instance={release.name}",
        "-o",
        "name",
    ).stdout.split()
    assert sorted(cluster) == sorted(
        [
            f"clusterrole.rbac.authorization.k8s.io/{name}",
            f"clusterrolebinding.rbac.authorization.k8s.io/{name}",
            f"clusterkopfpeering.kopf.dev/{name}",
        ]
    )


def test_the_kubeconfig_authenticates_as_the_charts_service_account(release: Release) -> None:
    who = delivery.whoami(release.env, release.kubeconfig)
    assert who == f"system:serviceaccount:{release.namespace}:{release.service_account}"


# --- the operator as the chart's ServiceAccount -----------------------------------------


def test_a_secretsync_syncs_end_to_end_with_only_the_charts_rbac(
    release: Release, team: str
) -> None:
    env = release.env
    api = env.api_client()
    password, shared = _value("pw"), _value("shared")
    delivery.vault_put(env, f"{team}/db", {"password": password})
    delivery.vault_put(env, f"{team}/shared", {"password": shared})
    # A ClusterSecretStore that admits namespaces by label: the operator reads the
    # namespace (get namespaces) and each namespace still logs in as itself.
    env.kubectl("label", "namespace", team, f"secretsync.io/test-team={team}")
    cluster_store = f"shared-{team}"
    delivery.vault_cluster_store(env, cluster_store, team, {"secretsync.io/test-team": team})
    log = release.workdir / "e2e.log"
    health = free_port()
    try:
        with release.operator(log, health_port=health):
            # The chart's probes call this path on the health port.
            probe = delivery.container(release.objects)["livenessProbe"]["httpGet"]
            assert probe["path"] == "/healthz"
            kube.eventually(
                lambda: http_ok(f"http://127.0.0.1:{health}{probe['path']}"),
                timeout=30,
                what="/healthz",
            )
            scenario.apply(
                env,
                delivery.secret_sync(team, "db", f"{team}/db"),
                delivery.secret_sync(
                    team, "shared", f"{team}/shared", store=cluster_store, kind="ClusterSecretStore"
                ),
            )
            synced = scenario.wait_for_reason(api, team, "db", "Synced")
            scenario.wait_for_reason(api, team, "shared", "Synced")
            store = scenario.store_ready(api, "SecretStore", team, "vault")
            cstore = scenario.store_ready(api, "ClusterSecretStore", "", cluster_store)
            kube.eventually(
                lambda: {e.reason for e in scenario.events_for(api, team, "db")} >= {"Created"},
                timeout=30,
                what="the Created Event of SecretSync db",
            )
    finally:
        env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, cluster_store, "--ignore-not-found")
    data = scenario.secret_data(api, team, "db")
    assert data == {"password": password.encode()}
    assert scenario.secret_data(api, team, "shared") == {"password": shared.encode()}
    # The status was written by this operator: its dataHash is keyed with the HMAC key
    # the operator created, as the ServiceAccount, in the release namespace.
    key = delivery.state_key(env, release.namespace)
    assert synced["status"]["dataHash"] == hashing.data_hash(key, data)
    assert (store["status"], store["reason"]) == ("True", "Valid")
    assert cstore["status"] == "True"
    assert delivery.refusals(log) == []
    reads = {(r["secretsync"], r["outcome"]) for r in delivery.audit_records(log)}
    assert reads == {(f"{team}/db", "success"), (f"{team}/shared", "success")}


def test_the_operator_writes_status_only_never_spec_or_metadata(
    release: Release, team: str
) -> None:
    env = release.env
    api = env.api_client()
    delivery.vault_put(env, f"{team}/db", {"password": _value("pw")})
    applied = delivery.secret_sync(team, "db", f"{team}/db")
    with release.operator(release.workdir / "spec.log"):
        scenario.apply(env, applied)
        scenario.wait_for_reason(api, team, "db", "Synced")
        obj = scenario.get_sync(api, team, "db")
    assert obj["spec"] == applied["spec"]
    assert obj["metadata"]["generation"] == 1
    assert not obj["metadata"].get("finalizers")
    # kubectl apply's own annotation is the only one: no kopf progress or diff-base.
    assert set(obj["metadata"].get("annotations") or {}) <= {
        "kubectl.kubernetes.io/last-applied-configuration"
    }
    # The apiserver's field ownership: everything but kubectl's apply went through the
    # status subresource.
    for entry in obj["metadata"]["managedFields"]:
        if not entry["manager"].startswith("kubectl"):
            assert entry.get("subresource") == "status", entry


def test_statuses_follow_kstatus_and_argocd_health_reads_them(release: Release, team: str) -> None:
    env = release.env
    api = env.api_client()
    delivery.vault_put(env, f"{team}/db", {"password": _value("pw")})
    delivery.vault_put(env, f"other-{team}/db", {"password": _value("theirs")})
    # A store whose Vault role does not exist: its login is refused.
    env.kubectl("label", "namespace", team, f"secretsync.io/test-team={team}")
    cluster_store = f"shared-{team}"
    delivery.vault_cluster_store(env, cluster_store, team, {"secretsync.io/test-team": team})
    with release.operator(release.workdir / "health.log"):
        scenario.apply(
            env,
            delivery.secret_sync(team, "synced", f"{team}/db"),
            delivery.secret_sync(team, "denied", f"other-{team}/db"),
            delivery.vault_store(env, team, "broken", role=f"absent-{team}"),
        )
        synced = scenario.wait_for_reason(api, team, "synced", "Synced")
        denied = scenario.wait_for_reason(api, team, "denied", "AccessDenied")
        scenario.store_ready(api, "SecretStore", team, "vault")
        scenario.store_ready(api, "SecretStore", team, "broken")
        scenario.store_ready(api, "ClusterSecretStore", "", cluster_store)
        store = _store(env, "SecretStore", team, "vault")
        refused = _store(env, "SecretStore", team, "broken")
        shared = _store(env, "ClusterSecretStore", "", cluster_store)
    env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, cluster_store)
    # Stopped: a new SecretSync gets no status, and a spec change is not yet observed.
    scenario.apply(env, delivery.secret_sync(team, "fresh", f"{team}/db"))
    edited = delivery.secret_sync(team, "synced", f"{team}/db")
    edited["spec"]["refreshInterval"] = "30m"
    scenario.apply(env, edited)
    fresh = scenario.get_sync(api, team, "fresh")
    behind = scenario.get_sync(api, team, "synced")
    assert behind["metadata"]["generation"] == 2

    # kstatus (what Flux waits on): observedGeneration at the top and in Ready.
    for obj in (synced, denied, store, refused, shared):
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        ready = scenario.condition(obj)
        assert ready["observedGeneration"] == obj["metadata"]["generation"]
        assert ready["reason"]
        assert ready["message"]
        assert ready["lastTransitionTime"]
    assert _kstatus(synced) == "Current"
    assert _kstatus(store) == "Current"
    assert _kstatus(shared) == "Current"
    assert _kstatus(refused) == "InProgress"
    assert _kstatus(denied) == "InProgress"  # Flux keeps waiting, then reports the message
    assert _kstatus(behind) == "InProgress"

    cases = {
        "secretsync-synced": ("Healthy", synced),
        "secretstore-valid": ("Healthy", store),
        "secretstore-login-refused": ("Degraded", refused),
        "clustersecretstore-valid": ("Healthy", shared),
        "secretsync-access-denied": ("Degraded", denied),
        "secretsync-no-status": ("Progressing", fresh),
        "secretsync-generation-behind": ("Progressing", behind),
    }
    for name, (expected, obj) in cases.items():
        _capture(name, expected, obj)
        health, message = _lua_health(obj)
        assert health == expected, (name, message)
    assert "AccessDenied" in _lua_health(denied)[1]


# --- two replicas -------------------------------------------------------------------------


def test_of_two_replicas_only_the_oldest_acts_and_the_other_takes_over(
    release: Release, team: str
) -> None:
    env = release.env
    api = env.api_client()
    peering = delivery.find(release.objects, "ClusterKopfPeering")["metadata"]["name"]
    first_log, second_log = release.workdir / "replica-a.log", release.workdir / "replica-b.log"
    for log in (first_log, second_log):
        log.unlink(missing_ok=True)
    delivery.vault_put(env, f"{team}/one", {"password": _value("one")})
    delivery.vault_put(env, f"{team}/two", {"password": _value("two")})

    def peers() -> set[str]:
        obj = _custom(env).get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", peering
        )
        return set(obj.get("status") or {})

    with contextlib.ExitStack() as second:
        with release.operator(first_log, pod="a"):
            kube.eventually(
                lambda: "Resuming operations" in first_log.read_text(),
                timeout=30,
                what="replica a to become active",
            )
            second.enter_context(release.operator(second_log, pod="b"))
            kube.eventually(
                lambda: peers() == {f"{release.name}-a", f"{release.name}-b"},
                timeout=30,
                what="both replicas in the peering object",
            )
            scenario.apply(env, delivery.secret_sync(team, "one", f"{team}/one"))
            scenario.wait_for_reason(api, team, "one", "Synced")
            assert [r["outcome"] for r in delivery.audit_records(first_log)] == ["success"]
            assert delivery.audit_records(second_log) == []
            assert "Resuming operations" not in second_log.read_text()
        # Replica a stops (a rolling update, a drain) and leaves the group: b takes over.
        kube.eventually(
            lambda: "Resuming operations" in second_log.read_text(),
            timeout=30,
            what="replica b to take over",
        )
        assert peers() == {f"{release.name}-b"}
        scenario.apply(env, delivery.secret_sync(team, "two", f"{team}/two"))
        scenario.wait_for_reason(api, team, "two", "Synced")
        assert {(r["secretsync"], r["outcome"]) for r in delivery.audit_records(second_log)} >= {
            (f"{team}/two", "success")
        }
