"""The Helm chart in namespaced mode (`watch.namespaces`) on the local node: its Pods
serve the listed namespaces, with a Role in each, and leave every other namespace alone;
`helm uninstall` removes its Roles and KopfPeerings too.

The namespaces, with their SecretSyncs, exist before the install (the chart needs them
to), so both replicas start on SecretSyncs that are already there: the case in which
only one of them may act from the first moment."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from e2e.support import Figures
from harness import kube, pods, proofs, releases, scenario, teams, watcher
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e


Installed = tuple[releases.Release, list[teams.Team], teams.Team, watcher.Summary]


@pytest.fixture(scope="module")
def namespaced(node_env: DevEnv, figures: Figures) -> Iterator[Installed]:
    """A release watching two team namespaces, the two teams, a team outside it, and what
    the Pods did from the install on."""
    suffix = uuid.uuid4().hex[:6]
    # The namespaces must exist before the install (the chart's README says so).
    served = [teams.create(node_env, f"served-{i}-{suffix}") for i in (1, 2)]
    outside = teams.create(node_env, f"outside-{suffix}")
    rel = releases.Release(env=node_env, name=f"ns-{suffix}", namespace=f"secretsync-ns-{suffix}")
    watched = ",".join(t.namespace for t in served)
    with watcher.watching(
        node_env,
        release_namespace=rel.namespace,
        selector=rel.selector,
        logs=node_env.run_dir / "e2e-logs" / f"{rel.name}-install",
    ) as watch:
        seconds = rel.install(f"watch.namespaces={{{watched}}}")
        figures.record("helm install --wait, namespaced (2 namespaces)", seconds, "s")
        for team in served:
            team.wait_synced()
        # Past the first peering readings of both replicas (one poll, 5 s).
        time.sleep(8)
    assert watch.summary is not None
    yield rel, served, outside, watch.summary
    if node_env.kubectl("get", "deployment", rel.fullname, "-n", rel.namespace, check=False).stdout:
        rel.uninstall()
    for ns in [rel.namespace, outside.namespace, *(t.namespace for t in served)]:
        node_env.kubectl("delete", "namespace", ns, "--wait=false")


def test_of_two_replicas_starting_on_existing_secretsyncs_only_one_reads_them(
    namespaced: Installed, figures: Figures
) -> None:
    """FAILS today (reported as an operator defect): each replica's engine decides at its
    first reading of the peering objects, before the other's heartbeat is there, so both
    act for up to one poll (5 s); with SecretSyncs already there, both read every remote
    secret and write every status (their logs hold the same audit records)."""
    rel, _, _, summary = namespaced
    env = rel.env
    readers = {}
    for pod in pods.list_pods(env.api_client(), rel.namespace, rel.selector):
        records = pods.audit_records(pods.log(env, rel.namespace, pod.name))
        readers[pod.name] = sorted({r["secretsync"] for r in records})
    figures.record("namespaced install: remote reads by Pod", readers)
    figures.record("namespaced install: engines acting at once", summary.engine_overlaps)
    assert summary.engine_overlaps == [], summary.describe()
    assert sum(1 for synced in readers.values() if synced) == 1, readers


def test_a_namespaced_release_syncs_its_namespaces_from_its_pods_and_no_other(
    namespaced: Installed,
) -> None:
    rel, served, outside, _ = namespaced
    env = rel.env
    api = env.api_client()
    for team in served:
        # standby_idle=False: the defect above makes the standby read too at the start.
        proofs.synced_by_release(
            team, release_namespace=rel.namespace, selector=rel.selector, standby_idle=False
        )
    # Each watched namespace has the group's KopfPeering, with both replicas' heartbeats.
    custom = kubernetes.client.CustomObjectsApi(api)
    live = {p.name for p in pods.list_pods(api, rel.namespace, rel.selector)}
    for team in served:
        peering: Any = custom.get_namespaced_custom_object(
            "kopf.dev", "v1", team.namespace, "kopfpeerings", rel.fullname
        )
        assert set(peering.get("status") or {}) == live
    # The namespace outside is not served: no status, no Secret, long after the others
    # synced; its ServiceAccount could not even read its Secrets.
    time.sleep(3)
    for name in ("db", "api"):
        assert scenario.get_sync(api, outside.namespace, name).get("status") is None
        assert outside.secret_data(name) is None
    operator = f"system:serviceaccount:{rel.namespace}:{rel.fullname}"
    for team, allowed in ((served[0], "yes"), (outside, "no")):
        can = env.kubectl(
            "auth", "can-i", "list", "secrets", "-n", team.namespace, f"--as={operator}",
            check=False,
        )  # fmt: skip
        assert can.stdout.strip() == allowed, (team.namespace, can.stdout, can.stderr)


def test_helm_uninstall_of_a_namespaced_release_leaves_nothing_of_it(
    namespaced: Installed, figures: Figures
) -> None:
    rel, served, _, _ = namespaced
    env = rel.env
    held = {(t.namespace, n): t.secret_data(n) for t in served for n in t.expected}
    seconds = rel.uninstall()
    figures.record("helm uninstall --wait, namespaced (Pods gone)", seconds, "s")
    kube.eventually(
        lambda: releases.labelled(env, rel.selector) == [],
        timeout=60,
        what=f"no object labelled {rel.selector}",
    )
    # The Roles, RoleBindings and KopfPeerings in the served namespaces went with it;
    # the synced Secrets stay.
    for team in served:
        left = env.kubectl(
            "get", "roles,rolebindings,kopfpeerings", "-n", team.namespace, "-o", "name"
        ).stdout.split()
        assert left == [], left
    assert {(t.namespace, n): t.secret_data(n) for t in served for n in t.expected} == held
    assert releases.namespace_contents(env, rel.namespace) == [
        "configmap/kube-root-ca.crt",
        "secret/secretsync-state",
        "serviceaccount/default",
    ]
