"""The local node (harness/node.py) runs real Pods from the operator's image built by
`make image`: a Pod reaches the apiserver by its in-cluster name and Service IP, the
harness's OpenBao and moto by their in-Pod addresses, and nothing outside the machine.

The module starts an environment of its own with the node (root, the Debian packages of
tools/node/install-debs.sh); if any part cannot start, the module fails with its log.
It prints how long the image build, the bring-up and the teardown took."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from harness import devenv, kube, node
from harness.processes import EnvError, Processes, log_tail

pytestmark = pytest.mark.integration

POD_TIMEOUT = 120.0


def _report(request: pytest.FixtureRequest, line: str) -> None:
    # Written past pytest's output capture, so that the figures show in every run (CI's
    # log included), not only with -s.
    plugins = request.config.pluginmanager
    reporter: Any = plugins.get_plugin("terminalreporter")
    capture: Any = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"node: {line}")


@pytest.fixture(scope="module")
def node_env(request: pytest.FixtureRequest) -> Iterator[tuple[devenv.DevEnv, Processes]]:
    """A control plane, OpenBao and moto with a node, for this module; torn down after it,
    and the teardown is checked to leave nothing behind."""
    begun = time.monotonic()
    try:
        devenv.build_image()
    except EnvError as exc:
        pytest.fail(f"`make image` failed: {exc}", pytrace=False)
    built = time.monotonic()
    run_dir = devenv.REPO / ".devenv" / f"node-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        env, procs = devenv.start(run_dir, node=True)
    except EnvError as exc:
        pytest.fail(f"the environment with a node did not start: {exc}", pytrace=False)
    up = time.monotonic()
    _report(request, f"image build {built - begun:.1f}s, bring-up {up - built:.1f}s ({run_dir})")
    try:
        yield env, procs
    finally:
        down_begun = time.monotonic()
        devenv.stop(procs)  # raises, naming what is left, unless everything is gone
        _report(request, f"teardown {time.monotonic() - down_begun:.1f}s")


@pytest.fixture(scope="module")
def env_with_node(node_env: tuple[devenv.DevEnv, Processes]) -> devenv.DevEnv:
    return node_env[0]


@pytest.fixture(scope="module")
def pod_namespace(env_with_node: devenv.DevEnv) -> str:
    core = kubernetes.client.CoreV1Api(env_with_node.api_client())
    name = f"node-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    # Pods need the namespace's default ServiceAccount, which a controller creates.
    kube.eventually(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        what=f"ServiceAccount {name}/default",
    )
    return name


def _operator_image(env: devenv.DevEnv) -> str:
    assert env.node is not None
    return next(ref for ref in env.node.images if "/secretsync:" in ref)


def _run_pod(
    env: devenv.DevEnv,
    namespace: str,
    *,
    name: str,
    args: list[str],
    command: list[str] | None = None,
) -> str:
    """Run the operator's image as the chart does (non-root, read-only root filesystem,
    no capabilities) to completion; return its log. Fails with the Pod's status and the
    kubelet's log if it does not succeed."""
    core = kubernetes.client.CoreV1Api(env.api_client())
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": _operator_image(env),
                    # Imported, never pulled: nothing can be pulled here.
                    "imagePullPolicy": "Never",
                    **({"command": command} if command else {}),
                    "args": args,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    env.kubectl("apply", "-f", "-", input_text=json.dumps(pod))

    def finished() -> str | None:
        # Typed loosely: the client's models make every field optional.
        pod: Any = core.read_namespaced_pod(name, namespace)
        phase = pod.status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        phase = kube.eventually(finished, timeout=POD_TIMEOUT, what=f"Pod {name} to finish")
    except TimeoutError:
        phase = "still running"
    log = str(core.read_namespaced_pod_log(name, namespace)) if phase != "still running" else ""
    if phase != "Succeeded":
        status = core.read_namespaced_pod(name, namespace).status
        events = env.kubectl("-n", namespace, "get", "events", check=False).stdout
        kubelet = next(s for s in Processes.load(env.run_dir).started if s.name == "kubelet")
        pytest.fail(
            f"Pod {name}: {phase}\nlog:\n{log}\nstatus: {status}\nevents:\n{events}\n"
            f"kubelet log:\n{log_tail(kubelet.log)}"
        )
    return log


def test_node_is_ready_on_containerd_2(env_with_node: devenv.DevEnv) -> None:
    core = kubernetes.client.CoreV1Api(env_with_node.api_client())
    ready: Any = core.read_node(node.NODE_NAME)
    conditions = {c.type: c.status for c in ready.status.conditions}
    assert conditions["Ready"] == "True"
    info = ready.status.node_info
    assert info.container_runtime_version.startswith("containerd://2.")
    assert info.kubelet_version == "v1.36.3"
    assert [a.address for a in ready.status.addresses if a.type == "InternalIP"] == [node.BRIDGE_IP]


def test_pod_runs_the_built_image_to_completion(
    env_with_node: devenv.DevEnv, pod_namespace: str
) -> None:
    log = _run_pod(env_with_node, pod_namespace, name="version", args=["--version"])
    version = _operator_image(env_with_node).rsplit(":", 1)[1]
    assert log.strip() == f"secretsync {version}"


def test_deployment_gets_an_available_replica(
    env_with_node: devenv.DevEnv, pod_namespace: str
) -> None:
    # The controllers devenv adds for a node: deployment, replicaset (and the node's
    # lifecycle, without which the Node would keep its not-ready taint).
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "idle", "namespace": pod_namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "idle"}},
            "template": {
                "metadata": {"labels": {"app": "idle"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": _operator_image(env_with_node),
                            "imagePullPolicy": "Never",
                            "command": ["python", "-c", "import time; time.sleep(3600)"],
                            "securityContext": {"readOnlyRootFilesystem": True},
                        }
                    ],
                },
            },
        },
    }
    env_with_node.kubectl("apply", "-f", "-", input_text=json.dumps(deployment))
    env_with_node.kubectl(
        "-n", pod_namespace, "rollout", "status", "deployment/idle", f"--timeout={POD_TIMEOUT:.0f}s"
    )


# Runs in a Pod with the operator's Python: what the Pod's network lets it do, as JSON.
PROBE = r"""
import errno, json, socket, ssl, time, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
result = {"resolved": sorted({a[4][0] for a in socket.getaddrinfo(
    "kubernetes.default.svc", 443, socket.AF_INET, socket.SOCK_STREAM)})}
review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
for key, host in (("by_name", "kubernetes.default.svc"), ("by_ip", "10.0.0.1")):
    request = urllib.request.Request(
        f"https://{host}/apis/authentication.k8s.io/v1/selfsubjectreviews", data=review.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=ctx, timeout=10) as reply:
        result[key] = json.load(reply)["status"]["userInfo"]["username"]
for key, url in (("vault", VAULT + "/v1/sys/health"), ("aws", AWS + "/moto-api/data.json")):
    with urllib.request.urlopen(url, timeout=10) as reply:
        result[key] = reply.status
begun = time.monotonic()
try:
    socket.create_connection(("203.0.113.1", 443), timeout=10).close()
    result["outside"] = "connected"
except OSError as exc:
    result["outside"] = errno.errorcode.get(exc.errno or 0, str(exc))
result["outside_seconds"] = time.monotonic() - begun
result["routes"] = [line.split()[1] for line in open("/proc/net/route").read().splitlines()[1:]]
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def probe(env_with_node: devenv.DevEnv, pod_namespace: str) -> dict[str, Any]:
    assert env_with_node.node is not None
    script = PROBE.replace("VAULT", repr(env_with_node.node.pod_vault_addr)).replace(
        "AWS", repr(env_with_node.node.pod_aws_endpoint)
    )
    log = _run_pod(
        env_with_node, pod_namespace, name="probe", command=["python", "-c"], args=[script]
    )
    result: dict[str, Any] = json.loads(log.strip().splitlines()[-1])
    return result


def test_pod_reaches_the_api_by_in_cluster_name_and_service_ip(
    probe: dict[str, Any], pod_namespace: str
) -> None:
    assert probe["resolved"] == [node.SERVICE_IP]
    # The ServiceAccount token authenticates both ways, so TLS (the Service IP and the
    # name on the serving certificate) and the DNAT to the loopback apiserver work.
    me = f"system:serviceaccount:{pod_namespace}:default"
    assert probe["by_name"] == me
    assert probe["by_ip"] == me


def test_pod_reaches_openbao_and_moto_at_their_in_pod_addresses(probe: dict[str, Any]) -> None:
    assert probe["vault"] == 200
    assert probe["aws"] == 200


def test_pod_cannot_reach_an_address_outside_the_machine(probe: dict[str, Any]) -> None:
    # No route at all: the kernel refuses at once, and no packet is sent.
    assert probe["outside"] == "ENETUNREACH"
    assert probe["outside_seconds"] < 1.0
    # /proc/net/route's destinations (hex, little-endian): the Pod subnet and the Service
    # range 10.0.0.0/24 only, no default route (00000000 with mask 00000000).
    assert sorted(probe["routes"]) == sorted(["0000000A", "0000590A"])
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"
