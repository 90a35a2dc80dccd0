"""The Helm chart in namespaced mode (`watch.namespaces`) on the local node: its Pods
serve the listed namespaces, with a Role in each, and leave every other namespace alone;
`helm uninstall` removes its Roles and KopfPeerings too.

The namespaces, with their SecretSyncs, exist before the install (the chart needs them
to), so both replicas start on SecretSyncs that are already there."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from e2e.support import Figures
from harness import kube, pods, proofs, releases, scenario, teams
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e


Installed = tuple[releases.Release, list[teams.Team], teams.Team]


@pytest.fixture(scope="module")
def namespaced(node_env: DevEnv, figures: Figures) -> Iterator[Installed]:
    """A release watching two team namespaces, the two teams, and a team outside it."""
    suffix = uuid.uuid4().hex[:6]
    # The namespaces must exist before the install (the chart's README says so).
    served = [teams.create(node_env, f"served-{i}-{suffix}") for i in (1, 2)]
    outside = teams.create(node_env, f"outside-{suffix}")
    rel = releases.Release(env=node_env, name=f"ns-{suffix}", namespace=f"secretsync-ns-{suffix}")
    watched = ",".join(t.namespace for t in served)
    seconds = rel.install(f"watch.namespaces={{{watched}}}")
    figures.record("helm install --wait, namespaced (2 namespaces)", seconds, "s")
    yield rel, served, outside
    if node_env.kubectl("get", "deployment", rel.fullname, "-n", rel.namespace, check=False).stdout:
        rel.uninstall()
    for ns in [rel.namespace, outside.namespace, *(t.namespace for t in served)]:
        node_env.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_namespaced_release_syncs_its_namespaces_from_its_pods_and_no_other(
    namespaced: Installed,
) -> None:
    rel, served, outside = namespaced
    env = rel.env
    api = env.api_client()
    for team in served:
        # standby_idle=False: both replicas start on existing SecretSyncs, and sometimes
        # both read them (test_replicas_starting_together.py, an operator defect).
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
    rel, served, _ = namespaced
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
