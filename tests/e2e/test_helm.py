"""The Helm chart, cluster-wide (its defaults: two replicas in a peering group), installed
with `helm install --wait` on the local node with the image `make image` built, and
what its Pods do: sync from AWS (moto) and Vault (OpenBao) as each namespace's own
identity, serve metrics and the rotation webhook through their Service, survive
`helm upgrade` of a value and of the image, the loss of the active Pod and a node drain,
and leave behind only what the docs say after `helm uninstall`.

The tests run in file order and share one release (they are one life of it); each
checks the state it needs rather than assuming the previous test's outcome."""

from __future__ import annotations

import datetime
import json
import os
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from e2e.support import FULL, Figures
from harness import delivery, flux, kube, node, pods, proofs, releases, scenario, teams, watcher
from harness.devenv import DevEnv
from harness.processes import EnvError

pytestmark = pytest.mark.e2e

FAILOVER_GOAL = 90.0  # seconds from losing the active Pod to a sync by the new one
RETAG = "e2e-retag"


@pytest.fixture(scope="module")
def release(node_env: DevEnv, figures: Figures) -> Iterator[releases.Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = releases.Release(env=node_env, name=f"e2e-{suffix}", namespace=f"secretsync-{suffix}")
    # The webhook's signing key must exist before the install (the chart says so).
    node_env.kubectl("create", "namespace", rel.namespace)
    node_env.kubectl(
        "create", "secret", "generic", webhook_secret(rel), "-n", rel.namespace,
        f"--from-literal=key={secrets.token_hex(32)}",
    )  # fmt: skip
    seconds = rel.install("webhook.enabled=true", f"webhook.secretName={webhook_secret(rel)}")
    figures.record("helm install --wait, cluster-wide, 2 replicas Ready", seconds, "s")
    yield rel
    if node_env.kubectl("get", "deployment", rel.fullname, "-n", rel.namespace, check=False).stdout:
        rel.uninstall()
    node_env.kubectl("delete", "namespace", rel.namespace, "--wait=false")


@pytest.fixture(scope="module")
def team(node_env: DevEnv, release: releases.Release) -> Iterator[teams.Team]:
    created = teams.create(node_env, f"team-{uuid.uuid4().hex[:6]}")
    yield created
    node_env.kubectl("delete", "namespace", created.namespace, "--wait=false")


def webhook_secret(release: releases.Release) -> str:
    return f"{release.fullname}-webhook"


def _api(env: DevEnv) -> Any:
    return env.api_client()


# --- the install ------------------------------------------------------------------------------


def test_helm_install_runs_two_ready_hardened_pods_of_which_one_acts(
    release: releases.Release,
) -> None:
    env = release.env
    api = _api(env)
    listed = pods.list_pods(api, release.namespace, release.selector)
    assert [p.ready for p in listed] == [True, True]
    assert {p.image for p in listed} == {pods.operator_image(env)}
    kube.eventually(
        lambda: (
            sorted(map(str, pods.roles(api, release.namespace, release.selector).values()))
            == ["active", "standby"]
        ),
        timeout=30,
        what="one active and one standby replica",
    )
    # The hardened settings are those of the running Pods, not only of the manifest.
    # Typed loosely: the client's models make every field optional.
    pod: Any = kubernetes.client.CoreV1Api(api).read_namespaced_pod(
        listed[0].name, release.namespace
    )
    context = pod.spec.containers[0].security_context
    assert context.read_only_root_filesystem is True
    assert context.capabilities.drop == ["ALL"]
    assert pod.spec.security_context.run_as_user == 65532
    # Both replicas keep a heartbeat in the group's ClusterKopfPeering.
    peering: Any = kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", release.fullname
    )
    assert set(peering.get("status") or {}) == {p.name for p in listed}


def test_the_releases_objects_are_healthy_by_kstatus_as_a_helmrelease_would_see_them(
    release: releases.Release,
) -> None:
    """helm-controller cannot be built here (the Go module proxy refuses it), so a
    HelmRelease is not reconciled; what it would wait for is kstatus on every object of
    the release, which this computes with the real library on the live objects."""
    try:
        binaries = flux.build_binaries()
    except EnvError as exc:
        pytest.fail(f"the kstatus program did not build: {exc}", pytrace=False)
    refs = []
    for obj in release.manifest():
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"].lower() + (f".{group}" if group else "")
        refs.append(f"{kind}/{obj['metadata']['name']}")
    verdicts = flux.kstatus_live(
        binaries, release.env.kubeconfig, *refs, namespace=release.namespace
    )
    assert {(v["kind"], v["name"]): v["status"] for v in verdicts} == {
        (v["kind"], v["name"]): "Current" for v in verdicts
    }
    assert {v["kind"] for v in verdicts} >= {"Deployment", "PodDisruptionBudget", "Service"}


# --- what the Pods do ------------------------------------------------------------------------


def test_secretsyncs_from_aws_and_vault_are_synced_by_the_active_pod_as_the_namespace(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    begun = time.monotonic()
    team.wait_synced("db", "api")
    figures.record("first syncs from inside the Pod (AWS + Vault)", time.monotonic() - begun, "s")
    proofs.synced_by_release(team, release_namespace=release.namespace, selector=release.selector)


# Runs in a helper Pod: what the metrics and webhook Services answer, as JSON.
SERVICE_PROBE = r"""
import hashlib, hmac, json, os, socket, time, urllib.error, urllib.request
service = os.environ["SERVICE"]
out = {"address": socket.gethostbyname(service)}
with urllib.request.urlopen(f"http://{service}:8080/metrics", timeout=10) as reply:
    text = reply.read().decode()
out["series"] = sorted({line.split("{")[0].split(" ")[0] for line in text.splitlines()
                        if line.startswith("secretsync_")})
body = json.dumps({"store": {"kind": "SecretStore", "namespace": os.environ["TEAM"],
                   "name": "aws"}, "keys": [os.environ["KEY"]]}).encode()
out["answers"] = []
for _ in range(40):
    t = str(int(time.time()))
    mac = hmac.new(os.environ["WEBHOOK_KEY"].encode(), t.encode() + b"." + body, hashlib.sha256)
    request = urllib.request.Request(
        f"http://{service}:8443/v1/notify", data=body, method="POST",
        headers={"X-Secretsync-Signature": f"t={t},v1={mac.hexdigest()}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            out["answers"].append([reply.status, json.load(reply)])
            break
    except urllib.error.HTTPError as exc:
        out["answers"].append([exc.code, json.load(exc)])
        if exc.code != 503:  # the standby answers 503 standing-by: the next try may reach the other
            break
    time.sleep(0.5)
print(json.dumps(out))
"""


def test_metrics_and_webhook_services_answer_another_pod_and_the_webhook_syncs_at_once(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    env = release.env
    proofs.synced_by_release(team, release_namespace=release.namespace, selector=release.selector)
    # A rotation the refresh (1h) would not see for an hour: only the webhook can bring it.
    rotated = team.seed_aws("db")
    service = f"{release.fullname}.{release.namespace}"
    begun = time.monotonic()
    out = pods.run_script(
        env,
        release.namespace,
        f"probe-{uuid.uuid4().hex[:6]}",
        SERVICE_PROBE,
        env_vars=[
            {"name": "SERVICE", "value": service},
            {"name": "TEAM", "value": team.namespace},
            {"name": "KEY", "value": f"{team.namespace}/db"},
            {
                "name": "WEBHOOK_KEY",
                "valueFrom": {"secretKeyRef": {"name": webhook_secret(release), "key": "key"}},
            },
        ],
    )
    result = json.loads(out.strip().splitlines()[-1])
    svc: Any = kubernetes.client.CoreV1Api(_api(env)).read_namespaced_service(
        release.fullname, release.namespace
    )
    assert result["address"] == svc.spec.cluster_ip
    # Whichever replica the Service chose: both serve their role and build.
    assert {"secretsync_active", "secretsync_build_info"} <= set(result["series"]), result
    status, body = result["answers"][-1]
    assert (status, body) == (202, {"matched": 1}), result["answers"]
    assert {s for s, _ in result["answers"][:-1]} <= {503}, result["answers"]
    kube.eventually(
        lambda: team.secret_data("db") == rotated,
        timeout=30,
        what="the webhook's notification to bring the rotated value",
    )
    figures.record("webhook from a Pod -> Secret rotated", time.monotonic() - begun, "s")
    figures.record("webhook tries before 202 (503 from the standby)", len(result["answers"]))


# --- upgrades ----------------------------------------------------------------------------------


def _pods(api: Any, release: releases.Release) -> list[pods.PodInfo]:
    return pods.list_pods(api, release.namespace, release.selector)


def _names(api: Any, release: releases.Release) -> set[str]:
    return {p.name for p in _pods(api, release)}


def _deployment_args(release: releases.Release) -> list[str]:
    apps = kubernetes.client.AppsV1Api(_api(release.env))
    deployment: Any = apps.read_namespaced_deployment(release.fullname, release.namespace)
    return [str(a) for a in deployment.spec.template.spec.containers[0].args]


def test_helm_upgrade_of_a_value_and_of_the_image_keeps_one_active_replica_and_every_secret(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    env = release.env
    api = _api(env)
    proofs.synced_by_release(
        team, release_namespace=release.namespace, selector=release.selector, standby_idle=False
    )
    before = _names(api, release)
    image = pods.operator_image(env)
    retagged = f"{image.rpartition(':')[0]}:{RETAG}"
    pods.tag_image(env, image, retagged)

    with watcher.watching(
        env,
        release_namespace=release.namespace,
        selector=release.selector,
        team=team,
        logs=env.run_dir / "e2e-logs" / f"{release.name}-upgrade",
    ) as watch:
        value_seconds = release.upgrade("logging.level=debug")
        image_seconds = release.upgrade(f"image.tag={RETAG}")
        # `--wait` returns once the new Pods are Ready; the rollout ends when the old
        # ones (of both earlier revisions) are gone too.
        kube.eventually(
            lambda: {(p.image, p.terminating) for p in _pods(api, release)} == {(retagged, False)},
            timeout=120,
            what=f"only Pods of {retagged} left",
        )
    summary = watch.summary
    assert summary is not None
    figures.record("helm upgrade --wait (logging.level)", value_seconds, "s")
    figures.record("helm upgrade --wait (image tag)", image_seconds, "s")
    figures.record("upgrade: min Ready operator Pods", summary.min_ready_pods)
    figures.record(
        "upgrade: longest without an active replica", summary.longest_without_active, "s"
    )
    assert summary.errors == [], summary.errors
    assert summary.problems == [], summary.describe()
    # The logs say exactly when each engine acted; /healthz samples (the Pods asked at
    # once, but still milliseconds apart) could straddle a hand-over, so they only inform.
    figures.record("upgrade: samples with two Pods saying active", len(summary.overlaps))
    assert summary.engine_overlaps == [], summary.describe()
    assert summary.min_ready_pods >= 1, summary.describe()

    after = pods.list_pods(api, release.namespace, release.selector)
    assert not {p.name for p in after} & before, "an old Pod survived the upgrades"
    assert {p.image for p in after} == {retagged}
    assert "--log-level=debug" in _deployment_args(release)
    # The new active replica works: a change made now reaches its Secret.
    team.seed_vault("api")
    env.kubectl(
        "annotate", scenario.SECRET_SYNCS, "api", "-n", team.namespace, "--overwrite",
        f"secretsync.io/force-sync={time.time()}",
    )  # fmt: skip
    kube.eventually(
        lambda: team.secret_data("api") == team.expected["api"][1],
        timeout=60,
        what="the new active replica to sync a change",
    )


# --- losing the active Pod --------------------------------------------------------------------


def _failover(release: releases.Release, team: teams.Team, *, name: str, stop: Any) -> float:
    """Stop the active Pod with `stop(pod)` and create a SecretSync at once; returns the
    seconds from the stop to the first read of it by the Pod that stood by (the audit
    record's own time, in its log), after checking that the sync completed."""
    env = release.env
    api = _api(env)
    old = pods.active_pod(api, release.namespace, release.selector)
    [standby] = [
        p
        for p in pods.list_pods(api, release.namespace, release.selector)
        if p.name != old.name and not p.terminating
    ]
    team.seed_aws(name)
    stopped = datetime.datetime.now(datetime.UTC)
    stop(old)
    scenario.apply(env, team.aws_sync(name))

    def read_by_standby() -> dict[str, Any] | None:
        for record in pods.audit_records(pods.log(env, release.namespace, standby.name)):
            if (record["secretsync"], record["outcome"]) == (f"{team.namespace}/{name}", "success"):
                return record
        return None

    record = kube.eventually(
        read_by_standby,
        timeout=FAILOVER_GOAL + 60,
        what=f"{standby.name} to read {team.namespace}/{name}",
        interval=1.0,
    )
    team.wait_synced(name)
    assert team.secret_data(name) == team.expected[name][1]
    assert pods.active_pod(api, release.namespace, release.selector).name == standby.name
    return (datetime.datetime.fromisoformat(record["at"]) - stopped).total_seconds()


def test_deleting_the_active_pod_hands_over_and_the_next_sync_comes_within_90_seconds(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    env = release.env

    def delete(pod: pods.PodInfo) -> None:
        env.kubectl("delete", "pod", pod.name, "-n", release.namespace, "--wait=false")

    seconds = _failover(release, team, name="failover", stop=delete)
    figures.record("failover: active Pod deleted -> first sync by the new active", seconds, "s")
    assert seconds <= FAILOVER_GOAL
    releases.wait_rolled_out(env, release)


@pytest.mark.skipif(not FULL, reason="long variant (about 70 s): SECRETSYNC_E2E=full")
def test_an_active_pod_that_dies_without_leaving_is_replaced_within_90_seconds(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    """SECRETSYNC_E2E=full only (about 70 s). The active Pod's processes are frozen
    (SIGSTOP: no heartbeat, no goodbye) and the Pod is force-deleted: the standby takes
    over only when the heartbeat's lifetime (60 s) runs out."""
    env = release.env

    def die(pod: pods.PodInfo) -> None:
        for pid in pods.container_pids(env, pod):
            os.kill(pid, signal.SIGSTOP)
        env.kubectl(
            "delete", "pod", pod.name, "-n", release.namespace, "--grace-period=0", "--force",
            "--wait=false",
        )  # fmt: skip

    seconds = _failover(release, team, name="crash", stop=die)
    figures.record("failover: active Pod frozen -> first sync by the new active", seconds, "s")
    assert seconds <= FAILOVER_GOAL
    releases.wait_rolled_out(env, release)


def test_a_node_drain_keeps_one_replica_by_the_pod_disruption_budget(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    env = release.env
    api = _api(env)
    releases.wait_rolled_out(env, release)
    try:
        with watcher.watching(
            env,
            release_namespace=release.namespace,
            selector=release.selector,
            team=team,
            logs=env.run_dir / "e2e-logs" / f"{release.name}-drain",
        ) as watch:
            drain = env.kubectl(
                "drain", node.NODE_NAME, f"--pod-selector={release.selector}",
                "--delete-emptydir-data", "--ignore-daemonsets", "--timeout=20s", check=False,
            )  # fmt: skip
            said = drain.stdout + drain.stderr
            live = [
                p
                for p in pods.list_pods(api, release.namespace, release.selector)
                if p.ready and not p.terminating
            ]
            # The Eviction API itself refuses the last available replica.
            refused = None
            try:
                kubernetes.client.CoreV1Api(api).create_namespaced_pod_eviction(
                    live[0].name,
                    release.namespace,
                    kubernetes.client.V1Eviction(
                        metadata=kubernetes.client.V1ObjectMeta(
                            name=live[0].name, namespace=release.namespace
                        )
                    ),
                )
            except kubernetes.client.ApiException as exc:
                refused = exc.status
            # While drained, the one replica left acts: a new SecretSync syncs.
            team.seed_aws("drained")
            scenario.apply(env, team.aws_sync("drained"))
            team.wait_synced("drained", timeout=FAILOVER_GOAL)
    finally:
        env.kubectl("uncordon", node.NODE_NAME)
    summary = watch.summary
    assert summary is not None
    assert drain.returncode != 0, said
    assert "evicted" in said, said
    assert "Cannot evict pod as it would violate the pod's disruption budget" in said, said
    assert len(live) == 1, live
    assert refused == 429
    assert summary.problems == [], summary.describe()
    assert summary.engine_overlaps == [], summary.describe()
    assert summary.min_ready_pods >= 1, summary.describe()
    figures.record("drain: min Ready operator Pods", summary.min_ready_pods)
    releases.wait_rolled_out(env, release)


# --- uninstall --------------------------------------------------------------------------------


def test_helm_uninstall_leaves_the_crds_and_the_synced_secrets_and_nothing_else(
    release: releases.Release, team: teams.Team, figures: Figures
) -> None:
    env = release.env
    proofs.synced_by_release(
        team, release_namespace=release.namespace, selector=release.selector, standby_idle=False
    )
    held = {name: team.secret_data(name) for name in team.expected}
    seconds = release.uninstall()
    figures.record("helm uninstall --wait (Pods gone)", seconds, "s")

    crds = set(env.kubectl("get", "crd", "-o", "name").stdout.split())
    assert {
        f"customresourcedefinition.apiextensions.k8s.io/{name}"
        for name in (
            "secretsyncs.secretsync.io",
            "secretstores.secretsync.io",
            "clustersecretstores.secretsync.io",
            "clusterkopfpeerings.kopf.dev",
            "kopfpeerings.kopf.dev",
        )
    } <= crds
    assert {name: team.secret_data(name) for name in team.expected} == held
    assert scenario.get_sync(_api(env), team.namespace, "db")["status"]["dataHash"]
    # Nothing labelled with the release is left, anywhere (cluster-scoped ones included).
    kube.eventually(
        lambda: releases.labelled(env, release.selector) == [],
        timeout=60,
        what=f"no object labelled {release.selector}",
    )
    left = releases.namespace_contents(env, release.namespace)
    figures.record("left in the release namespace after uninstall", left)
    assert left == sorted(
        [
            "configmap/kube-root-ca.crt",  # every namespace's, by the controller-manager
            "serviceaccount/default",  # every namespace's, by the controller-manager
            f"secret/{webhook_secret(release)}",  # made by the user before the install
            "secret/secretsync-state",  # the operator's HMAC key, which it created
        ]
    )
    assert delivery.state_key(env, release.namespace)
