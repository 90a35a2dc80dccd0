"""Flux's source-controller and kustomize-controller, and a Git server, beside an environment.

What GitOps users run is proven against the real controllers: tools/flux/build.sh builds
them from the Go module proxy, with their CRDs, and this module runs them as host
processes against the environment's apiserver (out of cluster, as Flux's own developers
run them): leader election off, every port chosen free on loopback, all namespaces
watched. source-controller serves the artifacts it packs from Git over HTTP on loopback,
where kustomize-controller downloads them. The Git repositories are bare repositories in
the run folder, served read-only over smart HTTP (harness/gitserver.py) and updated
through the file system (`GitRepo.commit`).

Also the kstatus program (tools/flux/kstatus), which says what kstatus, the health
library of Flux and Argo CD, computes: for live objects (`Flux.kstatus`) or for objects
given as dicts (`kstatus_of`, which needs only the build).

Every program logs into <run_dir>/<name>.log; `stop` stops exactly what `start` started
and, on an external cluster, removes the CRDs it installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from harness import devenv, kube
from harness.processes import EnvError, Processes, free_port, http_ok

# Generous for two busy cores; a healthy start takes a few seconds.
CONTROLLER_TIMEOUT = 120.0
GIT_SERVER_TIMEOUT = 30.0
CRD_TIMEOUT = 60.0
# A cold build of the two controllers takes minutes on two cores (tools/flux/build.sh).
BUILD_TIMEOUT = 1800.0

SOURCE_GROUP = "source.toolkit.fluxcd.io"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
# The kinds the tests create, deleted before the CRDs when those are removed.
FLUX_RESOURCES = (f"kustomizations.{KUSTOMIZE_GROUP}", f"gitrepositories.{SOURCE_GROUP}")
GIT_AUTHOR = ("secretsync tests", "tests@secretsync.invalid")
BRANCH = "main"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FluxBinaries:
    """Where tools/flux/build.sh put the programs; each controller's folder has crds/."""

    source_controller: Path
    kustomize_controller: Path
    kstatus: Path

    @property
    def crd_files(self) -> list[Path]:
        return sorted(
            [
                *(self.source_controller / "crds").glob("*.yaml"),
                *(self.kustomize_controller / "crds").glob("*.yaml"),
            ]
        )


def build_binaries() -> FluxBinaries:
    """Build (or find cached) the controllers and kstatus; see tools/flux/build.sh."""
    try:
        proc = subprocess.run(
            ["bash", str(devenv.REPO / "tools" / "flux" / "build.sh")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvError(f"tools/flux/build.sh took over {BUILD_TIMEOUT:.0f}s") from exc
    if proc.returncode != 0:
        raise EnvError(f"tools/flux/build.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    dirs = dict(line.split("=", 1) for line in proc.stdout.split())
    binaries = FluxBinaries(
        source_controller=Path(dirs["FLUX_SOURCE_CONTROLLER"]),
        kustomize_controller=Path(dirs["FLUX_KUSTOMIZE_CONTROLLER"]),
        kstatus=Path(dirs["KSTATUS"]),
    )
    if not binaries.crd_files:
        raise EnvError(f"tools/flux/build.sh left no CRDs in {binaries.source_controller}/crds")
    return binaries


def git(*args: str, cwd: Path) -> str:
    """Run git with no system or user configuration (a signing or hook setting of the
    host's must not change the test repositories)."""
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": GIT_AUTHOR[0],
        "GIT_AUTHOR_EMAIL": GIT_AUTHOR[1],
        "GIT_COMMITTER_NAME": GIT_AUTHOR[0],
        "GIT_COMMITTER_EMAIL": GIT_AUTHOR[1],
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise EnvError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip()


@dataclasses.dataclass(frozen=True, kw_only=True)
class GitRepo:
    """A bare repository served by the Git server, and the work tree that feeds it."""

    name: str
    url: str  # what a GitRepository's spec.url names
    bare: Path
    work: Path

    def commit(self, files: Path | Mapping[str, str], message: str = "update") -> str:
        """Make the branch hold exactly these files (a directory's contents, or relative
        path -> text), commit, push; returns the commit's SHA, as Flux's revisions show it."""
        for child in self.work.iterdir():
            if child.name == ".git":
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        if isinstance(files, Path):
            shutil.copytree(files, self.work, dirs_exist_ok=True)
        else:
            for relative, text in files.items():
                path = self.work / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git("add", "--all", cwd=self.work)
        git("commit", "--allow-empty", "--quiet", "--message", message, cwd=self.work)
        git("push", "--quiet", str(self.bare), f"HEAD:refs/heads/{BRANCH}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flux:
    """The running controllers and Git server, as the tests see them."""

    run_dir: Path
    binaries: FluxBinaries
    kubeconfig: Path
    git_url: str  # http://127.0.0.1:PORT, serving <run_dir>/git/*.git
    artifact_url: str  # source-controller's artifact server
    processes: Processes
    installed_crds: tuple[str, ...]  # CRDs this start created (removed on an external cluster)
    external_cluster: bool

    def repository(self, name: str, files: Path | Mapping[str, str]) -> GitRepo:
        """A new repository whose branch `main` holds these files."""
        root = self.run_dir / "git"
        repo = GitRepo(
            name=name,
            url=f"{self.git_url}/{name}.git",
            bare=root / f"{name}.git",
            work=root / "work" / name,
        )
        if repo.bare.exists():
            raise EnvError(f"git repository {name} exists already in {root}")
        repo.work.mkdir(parents=True)
        git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(repo.bare), cwd=root)
        git("init", "--quiet", f"--initial-branch={BRANCH}", cwd=repo.work)
        repo.commit(files, "initial")
        return repo

    def kstatus(self, *refs: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """kstatus's computed status of live objects, named RESOURCE[.GROUP]/NAME
        (plural, singular or short names, as kubectl takes them): for each a dict with
        apiVersion, kind, namespace, name, status (Current, InProgress, Failed,
        Terminating, NotFound), message and the conditions kstatus derives."""
        return kstatus_live(self.binaries, self.kubeconfig, *refs, namespace=namespace)


def kstatus_live(
    binaries: FluxBinaries, kubeconfig: Path, *refs: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """kstatus's computed status of live objects, as `Flux.kstatus` gives it, without the
    controllers running (the program needs only the build)."""
    args = [f"--kubeconfig={kubeconfig}"]
    if namespace:
        args.append(f"-n={namespace}")
    return _run_kstatus(binaries, [*args, *refs])


def kstatus_of(binaries: FluxBinaries, *objects: Mapping[str, Any]) -> list[dict[str, Any]]:
    """kstatus's computed status of objects given as dicts, in order (no cluster involved);
    each as `Flux.kstatus` gives it."""
    return _run_kstatus(binaries, ["--stdin"], stdin=json.dumps(list(objects)))


def _run_kstatus(
    binaries: FluxBinaries, args: list[str], *, stdin: str | None = None
) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(binaries.kstatus / "kstatus"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise EnvError(f"kstatus {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _crd_names(files: list[Path]) -> list[str]:
    """metadata.name of each CRD file (one CRD per file, as controller-gen writes them)."""
    names = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(str(doc["metadata"]["name"]))
    return names


def _install_crds(env: devenv.DevEnv, binaries: FluxBinaries) -> tuple[str, ...]:
    names = _crd_names(binaries.crd_files)
    existing = {
        line.removeprefix("customresourcedefinition.apiextensions.k8s.io/")
        for line in env.kubectl("get", "crd", "-o", "name").stdout.split()
    }
    if env.external_cluster and existing.intersection(names):
        # Controllers of ours beside an installed Flux would fight over the same objects.
        raise EnvError(
            "the cluster of SECRETSYNC_TEST_KUBECONFIG has Flux's CRDs already "
            f"({', '.join(sorted(existing.intersection(names)))}); the Flux tests run "
            "their own controllers and need a cluster without Flux"
        )
    args = [arg for path in binaries.crd_files for arg in ("-f", str(path))]
    # Server-side: the CRDs are larger than the client-side apply annotation allows.
    env.kubectl("apply", "--server-side", "--field-manager=secretsync-tests", *args)
    env.wait_established(*names, timeout=CRD_TIMEOUT)
    return tuple(name for name in names if name not in existing)


def _start_git_server(procs: Processes, root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = procs.start(
        "gitserver",
        [sys.executable, "-m", "harness.gitserver", "--root", str(root), "--port", str(port)],
        # The harness package, whatever the caller's working directory was.
        env={"PYTHONPATH": str(devenv.REPO / "tests")},
    )
    url = f"http://127.0.0.1:{port}"
    procs.wait_ready(
        server, lambda: http_ok(f"{url}/healthz"), timeout=GIT_SERVER_TIMEOUT, what="answering"
    )
    return url


def _controller_env(kubeconfig: Path, tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "KUBECONFIG": str(kubeconfig),
        # source-controller moves TMPDIR/source-controller aside at start and purges it:
        # a folder of this run's own, never one another run's controller uses.
        "TMPDIR": str(tmp),
    }


def _start_source_controller(procs: Processes, binaries: FluxBinaries, kubeconfig: Path) -> str:
    run_dir = procs.run_dir
    storage_port, health_port = free_port(), free_port()
    storage = run_dir / "artifacts"
    storage.mkdir(exist_ok=True)
    controller = procs.start(
        "source-controller",
        [
            str(binaries.source_controller / "source-controller"),
            "--watch-all-namespaces",
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{storage_port}",
            f"--storage-adv-addr=127.0.0.1:{storage_port}",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{health_port}",
            "--log-level=debug",
            "--log-encoding=console",
        ],
        env=_controller_env(kubeconfig, run_dir / "tmp-source-controller"),
    )
    procs.wait_ready(
        controller,
        # The artifact server starts once the manager runs: both must answer.
        lambda: http_ok(f"http://127.0.0.1:{health_port}/readyz") and _listening(storage_port),
        timeout=CONTROLLER_TIMEOUT,
        what="/readyz and its artifact server",
    )
    return f"http://127.0.0.1:{storage_port}"


def _start_kustomize_controller(procs: Processes, binaries: FluxBinaries, kubeconfig: Path) -> None:
    health_port = free_port()
    controller = procs.start(
        "kustomize-controller",
        [
            str(binaries.kustomize_controller / "kustomize-controller"),
            "--watch-all-namespaces",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{health_port}",
            # Everything a test applies comes from the local Git server.
            "--no-remote-bases=true",
            "--log-level=debug",
            "--log-encoding=console",
        ],
        env=_controller_env(kubeconfig, procs.run_dir / "tmp-kustomize-controller"),
    )
    procs.wait_ready(
        controller,
        lambda: http_ok(f"http://127.0.0.1:{health_port}/readyz"),
        timeout=CONTROLLER_TIMEOUT,
        what="/readyz",
    )


def start(env: devenv.DevEnv, run_dir: Path) -> Flux:
    """Build (or find cached) the programs, install the CRDs, start the Git server and
    both controllers; on failure stop what did start and raise with the culprit's log.

    `run_dir` must be a folder of its own (not the environment's: the two keep separate
    records of what they started)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(run_dir)
    binaries = build_binaries()
    installed: tuple[str, ...] = ()
    try:
        installed = _install_crds(env, binaries)
        git_url = _start_git_server(procs, run_dir / "git")
        artifact_url = _start_source_controller(procs, binaries, env.kubeconfig)
        _start_kustomize_controller(procs, binaries, env.kubeconfig)
    except BaseException:
        procs.stop_all()
        if env.external_cluster:
            _remove_crds(env, installed)
        raise
    return Flux(
        run_dir=run_dir,
        binaries=binaries,
        kubeconfig=env.kubeconfig,
        git_url=git_url,
        artifact_url=artifact_url,
        processes=procs,
        installed_crds=installed,
        external_cluster=env.external_cluster,
    )


def _remove_crds(env: devenv.DevEnv, names: tuple[str, ...]) -> None:
    if names:
        env.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=true")


def stop(flux: Flux, env: devenv.DevEnv) -> None:
    """Stop exactly what `start` started. On an external cluster, also remove the CRDs it
    installed, after deleting the Flux objects while the controllers still run (they
    remove their own finalizers; a CRD whose objects keep finalizers never goes)."""
    try:
        if flux.external_cluster and flux.installed_crds:
            for resource in FLUX_RESOURCES:
                env.kubectl(
                    "delete", resource, "--all", "--all-namespaces", "--wait=true", "--timeout=60s"
                )
    finally:
        flux.processes.stop_all()
    if flux.external_cluster:
        _remove_crds(env, flux.installed_crds)


@contextlib.contextmanager
def running(env: devenv.DevEnv, run_dir: Path) -> Iterator[Flux]:
    """`start` ... `stop` as a context manager."""
    flux = start(env, run_dir)
    try:
        yield flux
    finally:
        stop(flux, env)


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of that type, if the object has it."""
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == kind:
            return dict(cond)
    return None


def wait_condition(
    env: devenv.DevEnv,
    resource: str,
    name: str,
    *,
    namespace: str,
    status: str,
    timeout: float,
    reason: str | None = None,
) -> dict[str, Any]:
    """Wait until the object's Ready condition has that status (and reason) for the object's
    current generation; returns the object. Times out with the object's last status."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        proc = env.kubectl("get", resource, name, "-n", namespace, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        last = json.loads(proc.stdout)
        ready = condition(last, "Ready")
        # The condition's own observedGeneration: Flux leaves status.observedGeneration at
        # -1 until a reconciliation succeeds.
        current = ready is not None and ready.get("observedGeneration") == last["metadata"].get(
            "generation"
        )
        if ready is None or not current or ready.get("status") != status:
            return None
        return last if reason is None or ready.get("reason") == reason else None

    try:
        return kube.eventually(
            probe, timeout=timeout, what=f"{resource} {namespace}/{name} Ready={status}"
        )
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; its status: {json.dumps(last.get('status'))}") from None
