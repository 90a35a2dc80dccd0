"""The control-plane fault helpers (harness/faults.py) on the real local environment: the
apiserver and etcd stop and come back, old resourceVersions expire, watches stall behind
the proxy while other requests pass, and an operator dies by SIGKILL."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3

from harness import faults, kube
from harness import operator as op
from harness.devenv import DevEnv

pytestmark = pytest.mark.integration

ERRORS_WHILE_DOWN = (urllib3.exceptions.HTTPError, kubernetes.client.ApiException)


@pytest.fixture(scope="session")
def session_plane(env: DevEnv) -> Iterator[faults.ControlPlane]:
    if env.external_cluster:
        # Said in the summary (-ra), never silent: an external cluster is not ours to stop.
        pytest.skip(
            "SECRETSYNC_TEST_KUBECONFIG: an external cluster's control plane is not stopped"
        )
    plane = faults.ControlPlane(env)
    yield plane
    # What was started again here outlives the session's own teardown otherwise.
    plane.close(keep_running=bool(os.environ.get("SECRETSYNC_DEVENV_DIR")))


@pytest.fixture
def plane(session_plane: faults.ControlPlane) -> Iterator[faults.ControlPlane]:
    yield session_plane
    session_plane.ensure_running()  # a failed test must not leave later tests without it


def core_v1(api: Any) -> Any:
    """CoreV1Api, as Any: these tests read metadata the apiserver always sets, which the
    client's types leave optional."""
    return kubernetes.client.CoreV1Api(api)


def stream(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """A raw watch (kubernetes.watch has no annotations)."""
    watch: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    events: Iterator[dict[str, Any]] = watch.stream(*args, **kwargs)
    return events


def config_map(api: Any, namespace: str, name: str) -> str:
    """Create a ConfigMap; its resourceVersion."""
    body = kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name=name))
    return str(core_v1(api).create_namespaced_config_map(namespace, body).metadata.resource_version)


def watch_from(list_call: Any, namespace: str, resource_version: str) -> list[str]:
    """A raw watch from a resourceVersion for 3 s: the names it saw (raises on ERROR)."""
    events = stream(list_call, namespace, resource_version=resource_version, timeout_seconds=3)
    return [event["raw_object"]["metadata"]["name"] for event in events]


def test_requests_fail_while_the_apiserver_is_stopped_and_succeed_after_it_restarts(
    env: DevEnv, plane: faults.ControlPlane, namespace: str
) -> None:
    api = env.api_client()
    core = core_v1(api)
    before = plane.argv(faults.APISERVER)
    with plane.stopped(faults.APISERVER):
        assert not plane.running(faults.APISERVER)
        with pytest.raises(ERRORS_WHILE_DOWN):
            core.read_namespace(namespace, _request_timeout=5)
    # The same client (its pooled connections are dead) works again at once.
    assert core.read_namespace(namespace).metadata.name == namespace
    assert plane.argv(faults.APISERVER) == before


def test_writes_fail_while_etcd_is_stopped_and_data_survives_its_restart(
    env: DevEnv, api: Any, plane: faults.ControlPlane, namespace: str
) -> None:
    config_map(api, namespace, "before")
    with plane.stopped(faults.ETCD, grace=0), pytest.raises(ERRORS_WHILE_DOWN):
        core_v1(api).create_namespaced_config_map(
            namespace,
            kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="x")),
            _request_timeout=5,
        )
    config_map(api, namespace, "after")
    names = {c.metadata.name for c in core_v1(api).list_namespaced_config_map(namespace).items}
    assert {"before", "after"} <= names


def test_compaction_expires_uncached_watches_and_a_restart_expires_cached_ones(
    env: DevEnv, api: Any, plane: faults.ControlPlane, namespace: str
) -> None:
    core = core_v1(api)
    old = config_map(api, namespace, "first")
    config_map(api, namespace, "second")
    core.create_namespaced_event(
        namespace,
        kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(name="seen"),
            involved_object=kubernetes.client.V1ObjectReference(
                kind="ConfigMap", name="first", namespace=namespace
            ),
            reason="Test",
            message="an Event, which the apiserver does not cache",
        ),
    )
    faults.compact(plane)
    # Events are watched straight from etcd: compacted history is gone at once.
    with pytest.raises(kubernetes.client.ApiException) as gone:
        watch_from(core.list_namespaced_event, namespace, old)
    assert gone.value.status == 410
    # ConfigMaps are watched from the watch cache, which still holds their history.
    assert "second" in watch_from(core.list_namespaced_config_map, namespace, old)

    faults.force_gone(plane)
    core = core_v1(env.api_client())
    with pytest.raises(kubernetes.client.ApiException) as expired:
        watch_from(core.list_namespaced_config_map, namespace, old)
    assert expired.value.status == 410
    assert "Expired" in str(expired.value.reason)


@pytest.fixture
def proxy(env: DevEnv, plane: faults.ControlPlane) -> Iterator[faults.ApiServerProxy]:
    proxy = faults.apiserver_proxy(env, plane)
    yield proxy
    proxy.close()


def test_a_stalled_watch_receives_nothing_while_new_requests_go_through(
    proxy: faults.ApiServerProxy, api: Any, namespace: str
) -> None:
    via_proxy = kube.client(proxy.kubeconfig)
    core = core_v1(via_proxy)
    start = config_map(api, namespace, "zero")
    seen: queue.Queue[str] = queue.Queue()

    def watch() -> None:
        events = stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=120
        )
        # It ends with the proxy closing its connection at the end of the test.
        with contextlib.suppress(urllib3.exceptions.HTTPError):
            for event in events:
                seen.put(event["raw_object"]["metadata"]["name"])

    threading.Thread(target=watch, daemon=True).start()
    config_map(api, namespace, "one")
    assert seen.get(timeout=10) == "one"

    assert proxy.stall() == 1
    config_map(api, namespace, "two")
    with pytest.raises(queue.Empty):
        seen.get(timeout=3)
    listed = core.list_namespaced_config_map(namespace, _request_timeout=5)  # same client
    assert "two" in {c.metadata.name for c in listed.items}
    fresh = core_v1(kube.client(proxy.kubeconfig))
    assert fresh.read_namespaced_config_map("two", namespace, _request_timeout=5)
    assert [stalled for _, watching, stalled in proxy.connections() if watching] == [True]

    assert proxy.resume() == 1
    assert seen.get(timeout=10) == "two", "what the apiserver sent meanwhile arrives late"


@pytest.mark.usefixtures("crds")
def test_an_operator_behind_the_proxy_watches_through_it_and_dies_by_sigkill(
    env: DevEnv, proxy: faults.ApiServerProxy, operator_log: Path
) -> None:
    with op.running(env, operator_log, kubeconfig=proxy.kubeconfig) as proc:
        watches = kube.eventually(
            lambda: (
                [r for r, watching, _ in proxy.connections() if watching and "secretsyncs" in r]
                or None
            ),  # an empty list would end the wait
            timeout=30,
            what="the operator's SecretSync watch through the proxy",
        )
        assert watches
        began = time.monotonic()
        assert faults.kill(proc) == -9
        assert time.monotonic() - began < 5
        kube.eventually(
            lambda: not [c for c in proxy.connections() if c[1]],
            timeout=10,
            what="the dead operator's watches to close",
        )
