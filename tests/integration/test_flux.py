"""GitOps for real: Flux's source-controller and kustomize-controller, built from the Go
module proxy (tools/flux/build.sh), reconcile Kustomizations from Git repositories that
the harness serves over loopback (harness/flux.py), against an environment of this
module's own (the controllers watch every namespace, so they stay out of the session's
cluster). And kstatus itself, the library Flux judges health with, reads the statuses
that the operator wrote on a real cluster as docs/install/flux.md says."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import devenv, flux, kube, sopscli, sopssetup
from harness import operator as op
from harness.devenv import REPO, DevEnv
from harness.processes import EnvError

pytestmark = pytest.mark.integration

# Each step is seconds on a warm machine; the margin is for two busy cores.
RECONCILE_TIMEOUT = 120.0
ARGOCD_FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures" / "argocd"


@pytest.fixture(scope="module")
def flux_env() -> Iterator[tuple[DevEnv, flux.Flux]]:
    """A control plane (with OpenBao and moto, as devenv starts them) plus the Flux
    controllers and the Git server, for this module; stopped after it."""
    run_dir = REPO / ".devenv" / f"flux-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        env, procs = devenv.start(run_dir)
    except EnvError as exc:
        pytest.fail(f"the Flux test environment did not start: {exc}", pytrace=False)
    try:
        try:
            running = flux.start(env, run_dir / "flux")
        except EnvError as exc:
            pytest.fail(f"Flux did not start: {exc}", pytrace=False)
        try:
            yield env, running
        finally:
            flux.stop(running, env)
    finally:
        devenv.stop(procs)


@pytest.fixture
def flux_namespace(flux_env: tuple[DevEnv, flux.Flux]) -> Iterator[str]:
    env, _ = flux_env
    name = f"flux-{uuid.uuid4().hex[:8]}"
    env.kubectl("create", "namespace", name)
    yield name
    env.kubectl("delete", "namespace", name, "--wait=false")


def _configmap(name: str, data: dict[str, str]) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    )


def _apply_source_and_kustomization(env: DevEnv, namespace: str, repo: flux.GitRepo) -> None:
    """A GitRepository of the repo's main branch and a Kustomization of its root folder
    into the namespace, as docs/install/flux.md writes them (prune, wait, timeout). The
    Kustomization comes once the source has its artifact: before, it would report the
    artifact missing and retry only 30 s later."""
    source = {
        "apiVersion": f"{flux.SOURCE_GROUP}/v1",
        "kind": "GitRepository",
        "metadata": {"name": repo.name, "namespace": namespace},
        "spec": {"interval": "10m", "url": repo.url, "ref": {"branch": flux.BRANCH}},
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(source))
    flux.wait_condition(
        env,
        "gitrepository",
        repo.name,
        namespace=namespace,
        status="True",
        timeout=RECONCILE_TIMEOUT,
    )
    kustomization = {
        "apiVersion": f"{flux.KUSTOMIZE_GROUP}/v1",
        "kind": "Kustomization",
        "metadata": {"name": repo.name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "sourceRef": {"kind": "GitRepository", "name": repo.name},
            "path": "./",
            "targetNamespace": namespace,
            "prune": True,
            "wait": True,
            "timeout": "1m",
        },
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(kustomization))


def _request_reconcile(env: DevEnv, namespace: str, repo: flux.GitRepo) -> None:
    """After a push: the source is asked to look now rather than after its interval."""
    env.kubectl(
        "annotate",
        "gitrepository",
        repo.name,
        "-n",
        namespace,
        "--overwrite",
        f"reconcile.fluxcd.io/requestedAt={time.time()}",
    )


def _configmap_data(env: DevEnv, namespace: str, name: str) -> dict[str, str] | None:
    proc = env.kubectl("get", "configmap", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    data: dict[str, str] = json.loads(proc.stdout).get("data", {})
    return data


def test_a_kustomization_from_git_applies_its_configmaps_follows_pushes_and_prunes(
    flux_env: tuple[DevEnv, flux.Flux], flux_namespace: str
) -> None:
    env, fx = flux_env
    ns = flux_namespace
    repo = fx.repository(
        f"app-{ns}",
        {
            "settings.yaml": _configmap("settings", {"mode": "first"}),
            "extra.yaml": _configmap("extra", {"kept": "until pruned"}),
        },
    )
    first = _git_head(repo)
    _apply_source_and_kustomization(env, ns, repo)

    ready = flux.wait_condition(
        env, "kustomization", repo.name, namespace=ns, status="True", timeout=RECONCILE_TIMEOUT
    )
    assert ready["status"]["lastAppliedRevision"] == f"{flux.BRANCH}@sha1:{first}"
    assert _configmap_data(env, ns, "settings") == {"mode": "first"}
    assert _configmap_data(env, ns, "extra") == {"kept": "until pruned"}
    [verdict] = fx.kstatus(f"kustomizations.{flux.KUSTOMIZE_GROUP}/{repo.name}", namespace=ns)
    assert verdict["status"] == "Current", verdict

    # A push, then a reconcile requested at once.
    second = repo.commit({"settings.yaml": _configmap("settings", {"mode": "second"})}, "second")
    _request_reconcile(env, ns, repo)
    kube.eventually(
        lambda: _applied_revision(env, ns, repo.name) == f"{flux.BRANCH}@sha1:{second}",
        timeout=RECONCILE_TIMEOUT,
        what=f"the Kustomization to apply commit {second}",
    )
    assert _configmap_data(env, ns, "settings") == {"mode": "second"}
    # prune: true removes what left Git.
    kube.eventually(
        lambda: _configmap_data(env, ns, "extra") is None,
        timeout=RECONCILE_TIMEOUT,
        what="ConfigMap extra to be pruned",
    )


def test_a_manifest_the_apiserver_refuses_leaves_the_kustomization_not_ready_with_its_message(
    flux_env: tuple[DevEnv, flux.Flux], flux_namespace: str
) -> None:
    env, fx = flux_env
    ns = flux_namespace
    # Kustomize passes it through; only the apiserver's validation knows a ConfigMap key
    # may not hold a space.
    repo = fx.repository(f"broken-{ns}", {"bad.yaml": _configmap("bad", {"not a key!": "x"})})
    _apply_source_and_kustomization(env, ns, repo)

    failed = flux.wait_condition(
        env,
        "kustomization",
        repo.name,
        namespace=ns,
        status="False",
        reason="ReconciliationFailed",
        timeout=RECONCILE_TIMEOUT,
    )
    ready = flux.condition(failed, "Ready")
    assert ready is not None
    assert "a valid config key must consist of alphanumeric characters" in ready["message"], ready
    assert "ConfigMap/" in ready["message"], ready
    assert _configmap_data(env, ns, "bad") is None
    # What kstatus makes of it: Flux leaves status.observedGeneration at -1 until a
    # reconciliation succeeds, so kstatus reports the generation lag, not the message.
    [verdict] = fx.kstatus(f"kustomization.{flux.KUSTOMIZE_GROUP}/{repo.name}", namespace=ns)
    assert verdict["status"] == "InProgress", verdict
    assert failed["status"]["observedGeneration"] == -1, failed["status"]
    [missing] = fx.kstatus(f"ks/absent-{ns}", namespace=ns)
    assert missing["status"] == "NotFound", missing


# The statuses the operator wrote on a real cluster (captured by test_helm_chart.py), and
# what docs/install/flux.md says kstatus makes of them.
EXPECTED_KSTATUS = {
    "secretsync-synced": "Current",
    "secretsync-access-denied": "InProgress",  # Flux keeps waiting, then shows the message
    "secretsync-generation-behind": "InProgress",
    "secretsync-no-status": "Current",  # nothing to go on yet, as the doc warns
    "secretstore-valid": "Current",
    "secretstore-login-refused": "InProgress",
    "clustersecretstore-valid": "Current",
}


def test_kstatus_reads_the_operators_statuses_as_the_flux_guide_says() -> None:
    try:
        binaries = flux.build_binaries()
    except EnvError as exc:
        pytest.fail(f"the kstatus program did not build: {exc}", pytrace=False)
    objects: list[dict[str, Any]] = [
        json.loads((ARGOCD_FIXTURES / f"{name}.json").read_text())["object"]
        for name in EXPECTED_KSTATUS
    ]
    verdicts = flux.kstatus_of(binaries, *objects)
    got = {name: v["status"] for name, v in zip(EXPECTED_KSTATUS, verdicts, strict=True)}
    assert got == EXPECTED_KSTATUS
    denied = verdicts[list(EXPECTED_KSTATUS).index("secretsync-access-denied")]
    ready = flux.condition(
        objects[list(EXPECTED_KSTATUS).index("secretsync-access-denied")], "Ready"
    )
    assert ready is not None
    assert denied["message"] == ready["message"]


SOPS_EXAMPLE = REPO / "examples" / "sops"


def test_a_sops_document_in_git_becomes_a_secret_and_a_push_updates_it_at_once(
    flux_env: tuple[DevEnv, flux.Flux], flux_namespace: str
) -> None:
    """The README's example (examples/sops), as a user runs it: the document encrypted
    with the real sops CLI and committed, Flux applying the folder, the operator opening
    the document with the namespace's age key; then a push of a new document."""
    env, fx = flux_env
    ns = flux_namespace
    env.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    identity = sopssetup.age_identity()
    sopssetup.age_key_secret(env.api_client(), ns, "sops-age", identity)
    recipient = str(identity.to_public())

    def folder(password: str, token: str) -> dict[str, str]:
        files = {
            p.name: p.read_text()
            for p in SOPS_EXAMPLE.iterdir()
            if p.name not in ("app.yaml", "flux.yaml", "argocd.yaml")
        }
        plain = (
            (SOPS_EXAMPLE / "app.yaml")
            .read_text()
            .replace("change-me-before-use", password)
            .replace("example-token-not-real", token)
        )
        files["app.enc.yaml"] = sopscli.encrypt(
            plain.encode(), file_name="app.yaml", age_recipients=[recipient]
        ).decode()
        assert password not in files["app.enc.yaml"]
        return files

    first = (uuid.uuid4().hex, uuid.uuid4().hex)
    repo = fx.repository(f"sops-{ns}", folder(*first))
    log = env.run_dir / f"operator-flux-sops-{os.getpid()}.log"
    with op.running(env, log, "--watch-sops-documents"):
        _apply_source_and_kustomization(env, ns, repo)
        flux.wait_condition(
            env, "kustomization", repo.name, namespace=ns, status="True", timeout=RECONCILE_TIMEOUT
        )
        want = {
            "password": first[0],
            "API_TOKEN": first[1],
            "API_URL": "https://api.example.test",
        }
        # kstatus counts a SecretSync with no status yet as Current (docs/install/flux.md),
        # so the Kustomization may be Ready a moment before the Secret is written.
        kube.eventually(
            lambda: _secret_text(env, ns, "app-db") == want,
            timeout=60,
            what="the Secret to hold the committed document's values",
        )
        [verdict] = fx.kstatus("secretsyncs.secretsync.io/app-db", namespace=ns)
        assert verdict["status"] == "Current", verdict

        second = (uuid.uuid4().hex, uuid.uuid4().hex)
        repo.commit(folder(*second), "rotate")
        _request_reconcile(env, ns, repo)
        kube.eventually(
            lambda: (
                _secret_text(env, ns, "app-db")
                == {**want, "password": second[0], "API_TOKEN": second[1]}
            ),
            timeout=RECONCILE_TIMEOUT,
            what="the Secret to hold the pushed document's values",
        )
    text = log.read_text(errors="replace")
    for value in (*first, *second):
        assert value not in text, "a secret value reached the operator's log"


def _secret_text(env: DevEnv, namespace: str, name: str) -> dict[str, str] | None:
    proc = env.kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout).get("data", {})
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _git_head(repo: flux.GitRepo) -> str:
    return flux.git("rev-parse", "HEAD", cwd=repo.work)


def _applied_revision(env: DevEnv, namespace: str, name: str) -> str | None:
    proc = env.kubectl("get", "kustomization", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    revision: str | None = json.loads(proc.stdout).get("status", {}).get("lastAppliedRevision")
    return revision
