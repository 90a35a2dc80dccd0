"""`kubectl apply -k` of deploy/kustomize on the local node, as docs/install/kubectl.md
says (CRDs first, then an overlay of the base that points the image at the local
build): the operator's Pods run, one acts and syncs from AWS and Vault; applying again
changes nothing."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.support import Figures
from harness import delivery, pods, proofs, releases, teams
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e

NAMESPACE = "secretsync-system"  # the base's
SELECTOR = "app.kubernetes.io/instance=secretsync"
BASE_IMAGE = "ghcr.io/secretsync/secretsync"  # the chart's default repository


def overlay(env: DevEnv, folder: Path) -> Path:
    """An overlay of deploy/kustomize that runs the node's image, as kubectl.md shows."""
    repository, _, tag = pods.operator_image(env).rpartition(":")
    folder.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(delivery.KUSTOMIZE, folder)],
        "images": [{"name": BASE_IMAGE, "newName": repository, "newTag": tag}],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="module")
def applied(node_env: DevEnv, figures: Figures) -> Iterator[Path]:
    env = node_env
    folder = overlay(env, env.run_dir / "e2e-kustomize" / uuid.uuid4().hex[:6])
    begun = time.monotonic()
    env.kubectl("apply", "-k", str(delivery.KUSTOMIZE / "crds"))
    env.wait_established(
        "secretsyncs.secretsync.io",
        "secretstores.secretsync.io",
        "clustersecretstores.secretsync.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    )
    env.kubectl("apply", "-k", str(folder))
    env.kubectl("rollout", "status", "deployment/secretsync", "-n", NAMESPACE, "--timeout=180s")
    seconds = time.monotonic() - begun
    figures.record("kubectl apply -k (CRDs, then the overlay) to rolled out", seconds, "s")
    yield folder
    # The operator's objects, not the CRDs (every SecretSync of the cluster would go).
    env.kubectl("delete", "-k", str(delivery.KUSTOMIZE / "operator"), "--ignore-not-found")
    pods.wait_gone(env.api_client(), NAMESPACE, SELECTOR)
    releases.wait_namespace_gone(env, NAMESPACE)


def test_kubectl_apply_k_runs_the_operator_and_its_pod_syncs_from_aws_and_vault(
    node_env: DevEnv, applied: Path
) -> None:
    env = node_env
    api = env.api_client()
    listed = pods.list_pods(api, NAMESPACE, SELECTOR)
    assert [p.ready for p in listed] == [True, True]
    assert {p.image for p in listed} == {pods.operator_image(env)}
    team = teams.create(env, f"kustomize-{uuid.uuid4().hex[:6]}")
    try:
        proofs.synced_by_release(team, release_namespace=NAMESPACE, selector=SELECTOR)
    finally:
        env.kubectl("delete", "namespace", team.namespace, "--wait=false")
    # Applying the same overlay again changes nothing (kubectl diff exits 0).
    diff = env.kubectl("diff", "-k", str(applied), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
