"""The local node's Pods as the end-to-end tests see them (tests/e2e).

The operator Pods are asked what they are doing from the host, by their Pod address
(the host sits on the Pods' bridge, and no port-forward is needed): `/healthz` names the
replica's role, `/metrics` its series. Their logs come through the apiserver as
`kubectl logs` gets them; their memory from the node's cgroup files, the same counters
the kubelet reads. A helper Pod runs the operator's own image with a Python script, for
what must be seen from inside the cluster (Services, DNS).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes

from harness import kube, node
from harness.devenv import DevEnv

HEALTH_PORT = 8081  # the chart's health.port
METRICS_PORT = 8080  # the chart's metrics.port
PROBE_TIMEOUT = 1.0  # a Pod that is stopping may not answer at all
SCRIPT_POD_TIMEOUT = 120.0
# The hardened settings the chart gives the operator, for helper Pods of the same image.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PodInfo:
    """One Pod of a workload, as its status tells."""

    name: str
    uid: str
    ip: str | None
    ready: bool
    terminating: bool
    restarts: int
    image: str  # what the Pod asks for (the spec's), not the runtime's name of its image
    container_id: str | None  # without the runtime's prefix
    last_terminated: str | None  # the reason of the container's previous exit, if any


def _container_id(value: str | None) -> str | None:
    # "containerd://<id>" in the status; the cgroup folder is named by the id alone.
    return value.split("://")[-1] if value else None


def _info(pod: Any) -> PodInfo:
    statuses = pod.status.container_statuses or []
    first = statuses[0] if statuses else None
    conditions = {c.type: c.status for c in pod.status.conditions or ()}
    last = first.last_state.terminated if first and first.last_state else None
    return PodInfo(
        name=pod.metadata.name,
        uid=pod.metadata.uid,
        ip=pod.status.pod_ip,
        ready=conditions.get("Ready") == "True",
        terminating=pod.metadata.deletion_timestamp is not None,
        restarts=sum(s.restart_count for s in statuses),
        image=pod.spec.containers[0].image,
        container_id=_container_id(first.container_id if first else None),
        last_terminated=last.reason if last else None,
    )


def list_pods(api: Any, namespace: str, selector: str) -> list[PodInfo]:
    """The Pods matching the label selector, oldest first."""
    items: list[Any] = (
        kubernetes.client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=selector)
        .items
    )
    items.sort(key=lambda p: p.metadata.creation_timestamp)
    return [_info(p) for p in items]


def _get(url: str, *, timeout: float = PROBE_TIMEOUT) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a Pod address
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def role(ip: str | None) -> str | None:
    """The replica's role from its /healthz (active, standby, starting); None if it does not
    answer (not started yet, or stopping)."""
    if not ip:
        return None
    try:
        status, body = _get(f"http://{ip}:{HEALTH_PORT}/healthz")
    except OSError:
        return None
    if status != 200:
        return None
    value = json.loads(body).get("role")
    return str(value) if value else None


def roles(api: Any, namespace: str, selector: str) -> dict[str, str | None]:
    """Each Pod's role, by Pod name."""
    return {p.name: role(p.ip) for p in list_pods(api, namespace, selector) if not p.terminating}


def active_pod(api: Any, namespace: str, selector: str, *, timeout: float = 60) -> PodInfo:
    """The one active replica, once exactly one of the live Pods says it is active."""

    def probe() -> PodInfo | None:
        pods = [p for p in list_pods(api, namespace, selector) if not p.terminating]
        active = [p for p in pods if role(p.ip) == "active"]
        return active[0] if len(active) == 1 else None

    return kube.eventually(probe, timeout=timeout, what=f"one active replica in {namespace}")


def metrics(ip: str) -> str:
    """The Pod's /metrics text."""
    status, body = _get(f"http://{ip}:{METRICS_PORT}/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics of {ip} answered {status}")
    return body


def log(env: DevEnv, namespace: str, pod: str, *, previous: bool = False) -> str:
    """The container's log (`kubectl logs`), audit records included."""
    args = ["logs", pod, "-n", namespace, *(["--previous"] if previous else [])]
    return str(env.kubectl(*args).stdout)


def audit_records(text: str) -> list[dict[str, Any]]:
    """The `secret.read` audit records in a log."""
    out = []
    for line in text.splitlines():
        if line.startswith("{") and '"secret.read"' in line:
            record = json.loads(line)
            if record.get("event") == "secret.read":
                out.append(dict(record))
    return out


# --- memory -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Memory:
    """A container's memory cgroup (v1) counters, in bytes."""

    max_usage: int  # the peak since the container started (page cache included)
    usage: int
    limit: int
    failcnt: int  # how often the limit was hit
    rss: int  # anonymous memory now (what the process itself holds)


def _cgroup_dir(env: DevEnv, pod: PodInfo) -> Path:
    token = json.loads((env.run_dir / "node.json").read_text())["token"]
    root = Path("/sys/fs/cgroup/memory") / f"ssync-{token}" / "kubepods"
    found = [p for p in root.glob(f"*/pod{pod.uid}/{pod.container_id}") if p.is_dir()]
    found += [p for p in root.glob(f"pod{pod.uid}/{pod.container_id}") if p.is_dir()]
    if len(found) != 1:
        raise RuntimeError(f"no single memory cgroup for {pod.name} under {root}: {found}")
    return found[0]


def container_pids(env: DevEnv, pod: PodInfo) -> list[int]:
    """The host pids of the operator container's processes."""
    return [int(p) for p in (_cgroup_dir(env, pod) / "cgroup.procs").read_text().split()]


def root_read_only(env: DevEnv, pod: PodInfo) -> bool:
    """Whether the operator container's root filesystem is mounted read-only, as its own
    process sees it (/proc/PID/mounts from the host)."""
    pid = container_pids(env, pod)[0]
    for line in Path(f"/proc/{pid}/mounts").read_text().splitlines():
        _, point, _, options, *_ = line.split()
        if point == "/":
            return "ro" in options.split(",")
    raise RuntimeError(f"{pod.name}: no root mount in /proc/{pid}/mounts")


def memory(env: DevEnv, pod: PodInfo) -> Memory:
    """The operator container's memory counters, read from the node's cgroup files."""
    folder = _cgroup_dir(env, pod)

    def number(name: str) -> int:
        return int((folder / name).read_text().split()[0])

    stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    return Memory(
        max_usage=number("memory.max_usage_in_bytes"),
        usage=number("memory.usage_in_bytes"),
        limit=number("memory.limit_in_bytes"),
        failcnt=number("memory.failcnt"),
        rss=int(stat["total_rss"]),
    )


def kubelet_working_set(env: DevEnv, pod: PodInfo, namespace: str) -> int | None:
    """What the kubelet's summary API (through the apiserver's node proxy) says the
    container's working set is: the figure the kubelet evicts and OOM-ranks by."""
    raw = env.kubectl("get", "--raw", f"/api/v1/nodes/{node.NODE_NAME}/proxy/stats/summary")
    for entry in json.loads(raw.stdout).get("pods", []):
        ref = entry.get("podRef", {})
        if ref.get("name") == pod.name and ref.get("namespace") == namespace:
            for container in entry.get("containers", []):
                value = container.get("memory", {}).get("workingSetBytes")
                return int(value) if value is not None else None
    return None


# --- images and helper Pods ---------------------------------------------------------------------


def tag_image(env: DevEnv, source: str, target: str) -> None:
    """Give an image on the node another name (as a push of a new tag would): containerd's
    CRI then has it under both, and a Pod asking for the new one starts without a pull."""
    assert env.node is not None, "the environment has no node"
    socket = str(env.node.containerd_socket.resolve())
    base = [str(env.node.ctr), "--address", socket, "--namespace", "k8s.io", "images"]
    listed = _run([*base, "ls", "--quiet"]).split()
    if target not in listed:
        _run([*base, "tag", source, target])


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def operator_image(env: DevEnv) -> str:
    """The operator image the node imported (`make image`)."""
    assert env.node is not None, "the environment has no node"
    return next(ref for ref in env.node.images if "/secretsync:" in ref)


def run_script(
    env: DevEnv,
    namespace: str,
    name: str,
    script: str,
    *,
    env_vars: list[dict[str, Any]] | None = None,
    timeout: float = SCRIPT_POD_TIMEOUT,
) -> str:
    """Run a Python script in a Pod of the operator's image (hardened as the chart runs
    it) to completion; return its log. Fails with the Pod's status if it does not
    succeed. The Pod is deleted afterwards."""
    core = kubernetes.client.CoreV1Api(env.api_client())
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "main",
                    "image": operator_image(env),
                    # Imported, never pulled: nothing can be pulled here.
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", script],
                    "env": env_vars or [],
                    "securityContext": CONTAINER_SECURITY,
                }
            ],
        },
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(pod))

    def finished() -> str | None:
        # Typed loosely: the client's models make every field optional.
        read: Any = core.read_namespaced_pod(name, namespace)
        phase = read.status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        try:
            phase = kube.eventually(finished, timeout=timeout, what=f"Pod {name} to finish")
        except TimeoutError:
            phase = "still running"
        text = log(env, namespace, name) if phase != "still running" else ""
        if phase != "Succeeded":
            status = core.read_namespaced_pod(name, namespace).status
            raise RuntimeError(f"Pod {namespace}/{name}: {phase}\nlog:\n{text}\nstatus: {status}")
        return text
    finally:
        env.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)


def wait_gone(api: Any, namespace: str, selector: str, *, timeout: float = 120) -> float:
    """Wait until no Pod matches; returns how long it took."""
    begun = time.monotonic()
    kube.eventually(
        lambda: not list_pods(api, namespace, selector),
        timeout=timeout,
        what=f"the Pods {selector} in {namespace} to be gone",
        interval=0.5,
    )
    return time.monotonic() - begun
