"""The Helm chart installed on the local node, with the image `make image` built: install
and upgrade with `--wait` (so Pods really run and pass their readiness probe), uninstall,
and what a release leaves behind. For tests/e2e and `make demo NODE=1`."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import yaml

from harness import delivery, kube, pods
from harness.devenv import DevEnv

# `helm --wait`'s own limit, and the process's a little beyond it.
WAIT = "180s"
HELM_TIMEOUT = 240.0
# Kinds whose objects are records of what happened, not things a release made.
RECORD_KINDS = ("events", "events.events.k8s.io")


def image_values(env: DevEnv, *, tag: str | None = None) -> list[str]:
    """The chart values that run the node's imported image: never pulled (nothing can be
    pulled here), under `tag` if given (see pods.tag_image)."""
    repository, _, built_tag = pods.operator_image(env).rpartition(":")
    return [
        f"image.repository={repository}",
        f"image.tag={tag or built_tag}",
        "image.pullPolicy=Never",
    ]


@dataclasses.dataclass(kw_only=True)
class Release:
    """A release of charts/secretsync on the environment."""

    env: DevEnv
    name: str
    namespace: str

    @property
    def selector(self) -> str:
        """The label selector of the release's Pods."""
        return f"app.kubernetes.io/instance={self.name}"

    @property
    def fullname(self) -> str:
        """The chart's object names (its `secretsync.fullname`, no overrides)."""
        return self.name if "secretsync" in self.name else f"{self.name}-secretsync"

    def _helm(self, *args: str) -> str:
        return delivery.helm(
            self.env.binaries.helm_bin,
            *args,
            "--namespace",
            self.namespace,
            kubeconfig=self.env.kubeconfig,
            timeout=HELM_TIMEOUT,
        )

    def install(self, *values: str) -> float:
        """`helm install --wait` with the node's image and `values` (`--set` expressions);
        returns how long it took. On failure, the error carries the Pods and Events."""
        sets = [arg for value in [*image_values(self.env), *values] for arg in ("--set", value)]
        return self._timed(
            "install", self.name, str(delivery.CHART), "--create-namespace", "--wait",
            f"--timeout={WAIT}", *sets,
        )  # fmt: skip

    def upgrade(self, *values: str) -> float:
        """`helm upgrade --reuse-values --wait` with changed values; returns its duration."""
        sets = [arg for value in values for arg in ("--set", value)]
        return self._timed(
            "upgrade", self.name, str(delivery.CHART), "--reuse-values", "--wait",
            f"--timeout={WAIT}", *sets,
        )  # fmt: skip

    def _timed(self, *args: str) -> float:
        begun = time.monotonic()
        try:
            self._helm(*args)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.describe()}") from None
        return time.monotonic() - begun

    def uninstall(self) -> float:
        """`helm uninstall --wait`, then until the Pods are gone; returns the duration."""
        begun = time.monotonic()
        self._helm("uninstall", self.name, "--wait", f"--timeout={WAIT}")
        pods.wait_gone(self.env.api_client(), self.namespace, self.selector)
        return time.monotonic() - begun

    def manifest(self) -> list[dict[str, Any]]:
        """The objects of the release's current revision, as Helm applied them."""
        return delivery.docs(self._helm("get", "manifest", self.name))

    def values(self) -> dict[str, Any]:
        """The release's user-supplied values."""
        loaded = yaml.safe_load(self._helm("get", "values", self.name, "--output", "yaml"))
        return dict(loaded or {})

    def describe(self) -> str:
        """The Pods, their Events and the operator's last log lines, for a failure."""
        env = self.env
        lines = [
            env.kubectl("get", "pods", "-o", "wide", "-n", self.namespace, check=False).stdout,
            env.kubectl("get", "events", "-n", self.namespace, check=False).stdout[-4000:],
        ]
        for pod in pods.list_pods(env.api_client(), self.namespace, self.selector):
            text = env.kubectl("logs", pod.name, "-n", self.namespace, "--tail=20", check=False)
            lines.append(f"--- {pod.name} ---\n{text.stdout}{text.stderr}")
        return "\n".join(lines)


def namespace_contents(env: DevEnv, namespace: str) -> list[str]:
    """Every object in the namespace (`kind.group/name`), Events left out."""
    kinds = env.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout
    wanted = [k for k in kinds.split() if k not in RECORD_KINDS]
    listed = env.kubectl("get", ",".join(wanted), "-n", namespace, "-o", "name").stdout
    return sorted(listed.split())


def labelled(env: DevEnv, selector: str) -> list[str]:
    """Every object, cluster-scoped or in any namespace, that carries the labels."""
    found = []
    for scope in ("--namespaced=true", "--namespaced=false"):
        kinds = env.kubectl("api-resources", "--verbs=list", scope, "-o", "name").stdout.split()
        kinds = [k for k in kinds if k not in RECORD_KINDS]
        extra = ["--all-namespaces"] if scope.endswith("true") else []
        listed = env.kubectl("get", ",".join(kinds), "-l", selector, "-o", "name", *extra).stdout
        found.extend(listed.split())
    return sorted(found)


def wait_rolled_out(env: DevEnv, release: Release, *, timeout: float = 180) -> None:
    """Until the Deployment has all its replicas updated and available."""
    kube.eventually(
        lambda: (
            env.kubectl(
                "rollout", "status", f"deployment/{release.fullname}", "-n", release.namespace,
                "--timeout=10s", check=False,
            ).returncode
            == 0
        ),
        timeout=timeout,
        what=f"deployment {release.fullname} rolled out",
    )  # fmt: skip


def wait_namespace_gone(env: DevEnv, namespace: str, *, timeout: float = 120) -> None:
    """Until the namespace is deleted: objects cannot be created in one that terminates, so
    the next install there would fail."""
    kube.eventually(
        lambda: env.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        timeout=timeout,
        what=f"namespace {namespace} to be gone",
    )
