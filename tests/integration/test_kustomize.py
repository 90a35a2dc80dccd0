"""The kubectl and kustomize install paths (what Flux's and Argo CD's kustomize support
applies) against a real apiserver: `kubectl apply -f crds/`, `kubectl apply -k` of
deploy/kustomize, a re-apply that changes nothing (no perpetual GitOps diff), and the
installed ServiceAccount running a sync."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import delivery, scenario
from harness import operator as op
from harness.devenv import REPO, DevEnv

pytestmark = pytest.mark.integration

BASE = delivery.KUSTOMIZE
NAMESPACE = "secretsync-system"
NAME = "secretsync"
CRDS = (
    "secretsyncs.secretsync.io",
    "secretstores.secretsync.io",
    "clustersecretstores.secretsync.io",
)


def _established(env: DevEnv, *names: str) -> None:
    env.wait_established(*names)


def _versions(env: DevEnv) -> dict[str, str]:
    listed = json.loads(env.kubectl("get", "-k", str(BASE), "-o", "json").stdout)
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in listed["items"]
    }


@pytest.fixture(scope="module")
def installed(delivery_env: DevEnv) -> Iterator[str]:
    """The kustomize base applied the documented way (CRDs first); its kubectl output."""
    env = delivery_env
    env.kubectl("apply", "-k", str(BASE / "crds"))
    _established(env, *CRDS, "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
    out = env.kubectl("apply", "-k", str(BASE)).stdout
    yield out
    # The operator's objects only: the CRDs stay (other tests' objects live in them).
    env.kubectl("delete", "-k", str(BASE / "operator"), "--ignore-not-found", "--wait=true")


def test_kubectl_apply_of_the_crds_directory_matches_the_cluster(delivery_env: DevEnv) -> None:
    env = delivery_env
    env.kubectl("apply", "-f", str(REPO / "crds"))
    _established(env, *CRDS)
    # `kubectl diff` exits 0 only when the live objects are what the files say.
    diff = env.kubectl("diff", "-f", str(REPO / "crds"), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_kustomize_base_installs_the_operator_and_a_reapply_changes_nothing(
    delivery_env: DevEnv, installed: str
) -> None:
    env = delivery_env
    for expected in (
        f"namespace/{NAMESPACE}",
        f"serviceaccount/{NAME}",
        f"clusterrole.rbac.authorization.k8s.io/{NAME}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{NAME}",
        f"deployment.apps/{NAME}",
        f"service/{NAME}",
        f"poddisruptionbudget.policy/{NAME}",
        f"clusterkopfpeering.kopf.dev/{NAME}",
    ):
        assert expected in installed, installed
    # Applying the same base again writes nothing: every object keeps its resourceVersion.
    # (kubectl still prints "configured" for the PodDisruptionBudget: its selector is a
    # replace-strategy field that client-side apply always sends; the server finds no
    # change.)
    before = _versions(env)
    env.kubectl("apply", "-k", str(BASE))
    assert _versions(env) == before
    diff = env.kubectl("diff", "-k", str(BASE), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    deployment = env.kubectl(
        "get", "deployment", NAME, "-n", NAMESPACE, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert deployment == "2"


def test_the_kustomize_install_syncs_as_its_own_service_account(
    delivery_env: DevEnv, installed: str, tmp_path: Path
) -> None:
    env = delivery_env
    api = env.api_client()
    team = f"team-{uuid.uuid4().hex[:8]}"
    delivery.vault_team(env, team)
    try:
        password = f"pw-{uuid.uuid4().hex}"
        delivery.vault_put(env, f"{team}/db", {"password": password})
        objects = delivery.docs((BASE / "operator" / "secretsync.yaml").read_text())
        kubeconfig = delivery.service_account_kubeconfig(env, NAMESPACE, NAME, tmp_path / "sa")
        assert delivery.whoami(env, kubeconfig) == f"system:serviceaccount:{NAMESPACE}:{NAME}"
        log = tmp_path / "operator.log"
        with op.running(
            env,
            log,
            *delivery.run_args(objects),
            "--metrics-port",
            "0",
            "--health-port",
            "0",
            kubeconfig=kubeconfig,
            extra_env={"POD_NAMESPACE": NAMESPACE, "POD_ID": f"{NAME}-0"},
        ):
            scenario.apply(env, delivery.secret_sync(team, "db", f"{team}/db"))
            scenario.wait_for_reason(api, team, "db", "Synced")
        assert scenario.secret_data(api, team, "db") == {"password": password.encode()}
        assert delivery.refusals(log) == []
    finally:
        delivery.delete_namespace(env, team)
