"""GitOps on the local node with Flux's real source-controller and kustomize-controller
(harness/flux.py, `make flux-tools`), as docs/install/flux.md writes it:

- a Kustomization of deploy/kustomize, served from the harness's Git server with an
  overlay committed beside it that points the image at the local build, installs the
  operator: its Pods run and one of them syncs;
- a Kustomization of a team's stores and SecretSyncs with `wait: true` and the CEL
  health checks of the guide becomes Ready when they are Synced, and when one cannot
  sync (its remote key does not exist) it turns Ready=False at once, naming that
  SecretSync, whose own Ready message says why (kstatus reads it on the live object).

Without the CEL checks, kstatus counts an object without a status as Current, and
kustomize-controller checks health within milliseconds of applying: a new SecretSync
has no status yet, so `wait: true` alone reported Ready for a SecretSync that then
failed (seen while writing this test: "Health check passed in 30.77049ms"). And Flux's
failure message names each object with its kstatus status, never the object's own
message (fluxcd/pkg/ssa formats `<Kind>/<ns>/<name> status: '<status>'`).

helm-controller cannot be built here (the Go module proxy refuses it), so no HelmRelease
is reconciled; test_helm.py checks what a HelmRelease waits for (kstatus on every object
of the release) on a live release instead."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.support import Figures
from harness import delivery, flux, pods, proofs, releases, scenario, teams
from harness.devenv import DevEnv
from harness.processes import EnvError

pytestmark = pytest.mark.e2e

FLUX_NAMESPACE = "flux-system"
OPERATOR_NAMESPACE = "secretsync-system"  # deploy/kustomize's
SELECTOR = "app.kubernetes.io/instance=secretsync"
OVERLAY = "clusters/e2e"
RECONCILE_TIMEOUT = 180.0
# How long the team's Kustomization waits for its SecretSyncs before it reports failure:
# short, so that the failure case does not make the run long.
HEALTH_TIMEOUT = "30s"
# The health checks docs/install/flux.md gives for secretsync's kinds: an object without a
# status is not healthy yet (the expressions fail on it, so Flux waits), Ready=True is,
# and a SecretSync whose Ready=False reason needs a change in Git or in the provider
# fails at once instead of at the timeout.
HEALTH_CHECK_EXPRS = [
    {
        "apiVersion": "secretsync.io/v1alpha1",
        "current": "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
    },
    {
        "apiVersion": "secretsync.io/v1alpha1",
        "kind": "SecretSync",
        "current": "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "failed": (
            "status.conditions.exists(c, c.type == 'Ready' && c.status == 'False' && c.reason"
            " in ['InvalidSpec', 'NotFound', 'AccessDenied', 'NamespaceNotAllowed'])"
        ),
    },
]


@pytest.fixture(scope="module")
def flux_on_node(node_env: DevEnv, figures: Figures) -> Iterator[flux.Flux]:
    """The controllers and the Git server beside the package's environment, for this
    module; afterwards the operator that Flux installed is removed (not its CRDs)."""
    begun = time.monotonic()
    try:
        running = flux.start(node_env, node_env.run_dir / f"e2e-flux-{uuid.uuid4().hex[:6]}")
    except EnvError as exc:
        pytest.fail(f"Flux did not start: {exc}", pytrace=False)
    figures.record("Flux controllers started", time.monotonic() - begun, "s")
    node_env.kubectl("create", "namespace", FLUX_NAMESPACE, check=False)
    try:
        yield running
    finally:
        _remove_without_pruning(node_env)
        flux.stop(running, node_env)
        node_env.kubectl("delete", "-k", str(delivery.KUSTOMIZE / "operator"), "--ignore-not-found")
        pods.wait_gone(node_env.api_client(), OPERATOR_NAMESPACE, SELECTOR)
        releases.wait_namespace_gone(node_env, OPERATOR_NAMESPACE)


def _remove_without_pruning(env: DevEnv) -> None:
    """Delete the Flux objects while the controllers run (they remove their finalizers),
    after turning pruning off: pruning the operator's Kustomization would delete the CRDs,
    and with them every SecretSync in the cluster."""
    listed = env.kubectl("get", "kustomizations", "-n", FLUX_NAMESPACE, "-o", "name", check=False)
    for name in listed.stdout.split():
        env.kubectl(
            "patch", name, "-n", FLUX_NAMESPACE, "--type=merge", "-p", '{"spec":{"prune":false}}'
        )
    for kind in ("kustomizations", "gitrepositories"):
        env.kubectl(
            "delete", kind, "--all", "-n", FLUX_NAMESPACE, "--wait=true", "--timeout=60s",
            check=False,
        )  # fmt: skip


def _source(env: DevEnv, repo: flux.GitRepo) -> None:
    """A GitRepository of the repo's main branch, once it has its artifact."""
    source = {
        "apiVersion": f"{flux.SOURCE_GROUP}/v1",
        "kind": "GitRepository",
        "metadata": {"name": repo.name, "namespace": FLUX_NAMESPACE},
        "spec": {"interval": "1h", "url": repo.url, "ref": {"branch": flux.BRANCH}},
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(source))
    flux.wait_condition(
        env, "gitrepository", repo.name, namespace=FLUX_NAMESPACE, status="True",
        timeout=RECONCILE_TIMEOUT,
    )  # fmt: skip


def _kustomization(env: DevEnv, name: str, repo: str, path: str, **spec: Any) -> None:
    """A Kustomization as docs/install/flux.md writes it (prune, wait, a timeout)."""
    obj = {
        "apiVersion": f"{flux.KUSTOMIZE_GROUP}/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": FLUX_NAMESPACE},
        "spec": {
            "interval": "1h",
            "sourceRef": {"kind": "GitRepository", "name": repo},
            "path": path,
            "prune": True,
            "wait": True,
            "timeout": "3m",
            **spec,
        },
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(obj))


def _operator_files(env: DevEnv, folder: Path) -> Path:
    """deploy/kustomize and, beside it, the overlay that runs the node's image."""
    shutil.copytree(delivery.KUSTOMIZE, folder / "deploy" / "kustomize")
    repository, _, tag = pods.operator_image(env).rpartition(":")
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../deploy/kustomize"],
        "images": [{"name": "ghcr.io/secretsync/secretsync", "newName": repository, "newTag": tag}],
    }
    (folder / OVERLAY).mkdir(parents=True)
    (folder / OVERLAY / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    return folder


@pytest.fixture(scope="module")
def operator_by_flux(node_env: DevEnv, flux_on_node: flux.Flux, figures: Figures) -> dict[str, Any]:
    """The operator, installed by a Kustomization of deploy/kustomize; returns it."""
    env = node_env
    files = _operator_files(env, env.run_dir / f"e2e-flux-files-{uuid.uuid4().hex[:6]}")
    repo = flux_on_node.repository(f"secretsync-{uuid.uuid4().hex[:6]}", files)
    begun = time.monotonic()
    _source(env, repo)
    _kustomization(env, "secretsync", repo.name, f"./{OVERLAY}")
    ready = flux.wait_condition(
        env, "kustomization", "secretsync", namespace=FLUX_NAMESPACE, status="True",
        timeout=RECONCILE_TIMEOUT,
    )  # fmt: skip
    figures.record("Flux: Kustomization of deploy/kustomize Ready", time.monotonic() - begun, "s")
    return ready


def test_a_flux_kustomization_of_the_kustomize_base_installs_an_operator_that_syncs(
    node_env: DevEnv, operator_by_flux: dict[str, Any]
) -> None:
    env = node_env
    api = env.api_client()
    inventory = {e["id"] for e in operator_by_flux["status"]["inventory"]["entries"]}
    assert f"{OPERATOR_NAMESPACE}_secretsync_apps_Deployment" in inventory
    assert "_secretsyncs.secretsync.io_apiextensions.k8s.io_CustomResourceDefinition" in inventory
    listed = pods.list_pods(api, OPERATOR_NAMESPACE, SELECTOR)
    assert [p.ready for p in listed] == [True, True]
    assert {p.image for p in listed} == {pods.operator_image(env)}
    team = teams.create(env, f"flux-op-{uuid.uuid4().hex[:6]}")
    try:
        proofs.synced_by_release(team, release_namespace=OPERATOR_NAMESPACE, selector=SELECTOR)
    finally:
        env.kubectl("delete", "namespace", team.namespace, "--wait=false")


def _team_files(team: teams.Team, *syncs: dict[str, Any]) -> dict[str, str]:
    return {
        "stores.yaml": yaml.safe_dump_all([team.aws_store(), team.vault_store()]),
        "syncs.yaml": yaml.safe_dump_all(list(syncs)),
    }


def test_a_kustomization_of_secretsyncs_waits_for_them_and_reports_the_one_that_cannot_sync(
    node_env: DevEnv,
    flux_on_node: flux.Flux,
    operator_by_flux: dict[str, Any],
    figures: Figures,
) -> None:
    env = node_env
    api = env.api_client()
    # The namespace and its identities are the platform's; the stores and SecretSyncs
    # are the team's, in Git.
    team = teams.create(env, f"flux-team-{uuid.uuid4().hex[:6]}", stores=False, syncs=False)
    try:
        team.seed_aws("db")
        team.seed_vault("api")
        repo = flux_on_node.repository(
            f"team-{uuid.uuid4().hex[:6]}",
            _team_files(team, team.aws_sync("db"), team.vault_sync("api")),
        )
        _source(env, repo)
        begun = time.monotonic()
        _kustomization(
            env, "team-secrets", repo.name, "./", timeout=HEALTH_TIMEOUT,
            dependsOn=[{"name": "secretsync"}], healthCheckExprs=HEALTH_CHECK_EXPRS,
        )  # fmt: skip
        ready = flux.wait_condition(
            env, "kustomization", "team-secrets", namespace=FLUX_NAMESPACE, status="True",
            timeout=RECONCILE_TIMEOUT,
        )  # fmt: skip
        figures.record("Flux: Kustomization of SecretSyncs Ready", time.monotonic() - begun, "s")
        # Ready means the SecretSyncs were Synced, not only applied.
        for name in ("db", "api"):
            assert scenario.condition(scenario.get_sync(api, team.namespace, name))["reason"] == (
                "Synced"
            )
            assert team.secret_data(name) == team.expected[name][1]
        assert ready["status"]["lastAppliedRevision"].endswith(_head(repo))

        # A SecretSync of a key that does not exist: the Kustomization waits for its first
        # status, then fails at once, naming it; the SecretSync says why.
        missing = team.aws_sync("missing", key=f"{team.namespace}/no-such-secret")
        revision = repo.commit(
            _team_files(team, team.aws_sync("db"), team.vault_sync("api"), missing), "missing"
        )
        env.kubectl(
            "annotate", "gitrepository", repo.name, "-n", FLUX_NAMESPACE, "--overwrite",
            f"reconcile.fluxcd.io/requestedAt={time.time()}",
        )  # fmt: skip
        begun = time.monotonic()
        # The health check's verdict, not any False on the way there (seen once, 0.3 s
        # after the push, before the new revision was even applied).
        failed = flux.wait_condition(
            env, "kustomization", "team-secrets", namespace=FLUX_NAMESPACE, status="False",
            reason="HealthCheckFailed", timeout=RECONCILE_TIMEOUT,
        )  # fmt: skip
        figures.record("Flux: push -> failure reported", time.monotonic() - begun, "s")
        sync_ready = scenario.condition(scenario.get_sync(api, team.namespace, "missing"))
        assert sync_ready["reason"] == "NotFound", sync_ready
        report = flux.condition(failed, "Ready")
        assert report is not None
        figures.record("Flux: the failure message", report["message"])
        assert report["reason"] == "HealthCheckFailed", report
        assert f"SecretSync/{team.namespace}/missing status: 'Failed'" in report["message"]
        # Before the timeout: the CEL `failed` expression made it terminal.
        assert "failed early due to stalled resources" in report["message"], report
        assert failed["status"]["lastAttemptedRevision"].endswith(revision)
        # Where the reason is read: the SecretSync's Ready message, which kstatus (and so
        # `flux` and `kubectl get ssync`) shows on the live object.
        [verdict] = flux_on_node.kstatus("ssync/missing", namespace=team.namespace)
        assert (verdict["status"], verdict["message"]) == ("InProgress", sync_ready["message"])
        # The other SecretSyncs kept their Secrets.
        assert team.secret_data("db") == team.expected["db"][1]
    finally:
        env.kubectl("delete", "namespace", team.namespace, "--wait=false")


def _head(repo: flux.GitRepo) -> str:
    return flux.git("rev-parse", "HEAD", cwd=repo.work)
