"""The apiserver fails, restarts, forgets history or goes silent: every SecretSync still
converges (its Secret and its status), nothing is written twice, the operator never exits.

Defect 1 of the reliability issue: a status write that failed was logged and never
retried, so SecretSyncs created while kube-apiserver restarted kept no status for up to
their refresh interval (1h), and GitOps tools saw them progressing for that long.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from faults import world
from faults.size import FULL
from harness import faults, scenario, vaultsetup
from harness import operator as op
from harness.apiproxy import ApiServerProxy
from harness.devenv import DevEnv
from harness.faultproxy import FaultProxy
from harness.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

STATUS_PATCH = r"^PATCH /apis/secretsync\.io/v1alpha1/namespaces/[^/]+/secretsyncs/[^/]+/status"
CONVERGE = 60.0  # seconds after the fault ends: a few status retries (capped at 30 s)
STALL_BOUND = 110.0  # kopf's 70 s inactivity timeout, a reconnect, a sync
WATCHES = 4  # SecretSyncs, SecretStores, ClusterSecretStores, managed Secrets


@pytest.fixture(scope="module")
def vault(faults_env: DevEnv) -> Iterator[FaultProxy]:
    proxy = FaultProxy(faults_env.vault_addr)
    yield proxy
    proxy.stop()


def _values(env: DevEnv, ns: str, count: int, values: set[bytes]) -> None:
    for i in range(count):
        secret = world.value()
        values.add(secret.encode())
        vaultsetup.put(env, f"{ns}/k{i}", {"p": secret})


def test_status_writes_refused_for_a_while_land_once_the_apiserver_takes_them(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    plane: faults.ControlPlane,
    vault: FaultProxy,
    figures: Callable[..., None],
) -> None:
    count = 100
    ns = world.vault_team(faults_env, faults_api, "status", server=vault.url)
    _values(faults_env, ns, count, faults_values)
    proxy = faults.apiserver_proxy(faults_env, plane)
    try:
        with op.running(faults_env, faults_log, kubeconfig=proxy.kubeconfig) as proc:
            proxy.refuse(STATUS_PATCH)  # every status write fails; Secret writes pass
            world.apply_many(
                faults_env, [world.sync(ns, f"s{i}", f"{ns}/k{i}") for i in range(count)]
            )
            deadline = time.monotonic() + 60
            while len(world.managed_secrets(faults_api, ns)) < count:
                assert time.monotonic() < deadline, "the Secrets were not all written"
                time.sleep(0.5)
            time.sleep(6)  # the apiserver keeps refusing status writes for a while
            refused = proxy.allow()
            took = world.wait_all(faults_api, ns, count, timeout=CONVERGE)
            assert proc.poll() is None
    finally:
        proxy.close()
    figures(
        "apiserver refuses status writes (6 s after the Secrets are written)",
        secretsyncs=count,
        status_writes_refused=refused,
        converged_after_s=round(took, 1),
        bound_s=CONVERGE,
    )
    assert refused >= count


def test_an_apiserver_restart_while_secretsyncs_are_created_loses_nothing(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    plane: faults.ControlPlane,
    vault: FaultProxy,
    figures: Callable[..., None],
) -> None:
    count = 500 if FULL else 150
    ns = world.vault_team(faults_env, faults_api, "restart", server=vault.url)
    _values(faults_env, ns, count, faults_values)
    docs = [world.sync(ns, f"s{i}", f"{ns}/k{i}") for i in range(count)]
    with op.running(faults_env, faults_log) as proc:
        applied = threading.Event()

        def apply_all() -> None:
            # kubectl apply, retried while the apiserver is away (as a GitOps tool would).
            for start in range(0, count, 25):
                chunk = docs[start : start + 25]
                for _ in range(60):
                    try:
                        world.apply_many(faults_env, chunk)
                        break
                    except RuntimeError:
                        time.sleep(1)
            applied.set()

        applier = threading.Thread(target=apply_all, daemon=True)
        applier.start()
        time.sleep(1.5)  # part of them created and being synced
        stopped_at = time.monotonic()
        with plane.stopped(faults.APISERVER):
            time.sleep(6)
        outage = time.monotonic() - stopped_at
        assert applied.wait(300), "the SecretSyncs could not all be applied"
        took = world.wait_all(faults_api, ns, count, timeout=CONVERGE + 60)
        assert proc.poll() is None, "the operator exited on a transient fault"
    secrets = world.managed_secrets(faults_api, ns)
    figures(
        "kube-apiserver restart while SecretSyncs are created",
        secretsyncs=count,
        apiserver_down_s=round(outage, 1),
        converged_after_apply_s=round(took, 1),
        secrets=len(secrets),
    )
    assert sorted(s.metadata.name for s in secrets) == sorted(f"s{i}" for i in range(count))
    owners = [len(s.metadata.owner_references or []) for s in secrets]
    assert set(owners) == {1}


def test_watches_that_expire_or_go_silent_recover_and_nothing_is_missed(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    plane: faults.ControlPlane,
    figures: Callable[..., None],
) -> None:
    ns = world.vault_team(faults_env, faults_api, "watch", server=faults_env.vault_addr)
    _values(faults_env, ns, 3, faults_values)
    proxy = faults.apiserver_proxy(faults_env, plane)
    try:
        with op.running(faults_env, faults_log, kubeconfig=proxy.kubeconfig) as proc:
            scenario.apply(faults_env, world.sync(ns, "s0", f"{ns}/k0"))
            world.wait_all(faults_api, ns, 1, timeout=60)
            # 410 Gone: etcd compacted past every resourceVersion the watches hold.
            faults.force_gone(plane)
            scenario.apply(faults_env, world.sync(ns, "s1", f"{ns}/k1"))
            gone = world.wait_all(faults_api, ns, 2, timeout=CONVERGE)
            # A silent watch: the connection stays open, nothing arrives. kopf's watches
            # ask for bookmarks (every minute) and reconnect after 70 s of silence.
            # After the 410 each watch comes back at kopf's own pace (its backoff): stall
            # them once they all have, or the ones still away would escape the stall.
            # A watch that kopf re-opens between the count and the stall escapes it (its
            # server-side timeout ends watches now and then): then let them flow and try
            # again, so that every watch is silent at once.
            for _ in range(5):
                world.wait_for(lambda: _watching(proxy) >= WATCHES, 60, state=proxy.connections)
                stalled = proxy.stall()
                if stalled >= WATCHES:
                    break
                proxy.resume()
            assert stalled >= WATCHES, proxy.connections()
            scenario.apply(faults_env, world.sync(ns, "s2", f"{ns}/k2"))
            silent = world.wait_all(faults_api, ns, 3, timeout=STALL_BOUND)
            assert proc.poll() is None
    finally:
        proxy.close()
    figures(
        "watches: 410 Gone, then silently stalled",
        synced_after_410_s=round(gone, 1),
        stalled_watches=stalled,
        synced_despite_stall_s=round(silent, 1),
        stall_bound_s=STALL_BOUND,
    )


def _watching(proxy: ApiServerProxy) -> int:
    return sum(1 for _, watch, _ in proxy.connections() if watch)


def test_readiness_follows_the_api(
    faults_env: DevEnv, faults_log: Path, plane: faults.ControlPlane, figures: Callable[..., None]
) -> None:
    health = free_port()
    url = f"http://127.0.0.1:{health}/readyz"
    with op.running(faults_env, faults_log, "--health-port", str(health)) as proc:
        world.wait_for(lambda: _status(url) == 200, 30)
        with plane.stopped(faults.APISERVER):
            lost = time.monotonic()
            world.wait_for(lambda: _status(url) == 503, 30)
            unready = time.monotonic() - lost
        back = time.monotonic()
        world.wait_for(lambda: _status(url) == 200, 60)
        ready = time.monotonic() - back
        assert proc.poll() is None
    figures(
        "readiness when the operator loses the API",
        unready_after_s=round(unready, 1),
        ready_again_after_s=round(ready, 1),
    )


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_a_secret_deleted_while_the_watch_was_broken_is_recreated(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    plane: faults.ControlPlane,
    figures: Callable[..., None],
) -> None:
    """The operator keeps what the managed-Secret watch said, to skip reading Secrets on
    unchanged refreshes. A Secret deleted while the watch is broken (and re-listed after
    a 410) sends no DELETED event: a forced sync must read it anyway, and the timer too,
    once the re-listing has shown the Secret gone."""
    ns = world.vault_team(faults_env, faults_api, "gap", server=faults_env.vault_addr)
    _values(faults_env, ns, 1, faults_values)
    core = kubernetes.client.CoreV1Api(faults_api)
    proxy = faults.apiserver_proxy(faults_env, plane)
    try:
        with op.running(faults_env, faults_log, kubeconfig=proxy.kubeconfig) as proc:
            doc = world.sync(ns, "s0", f"{ns}/k0", refresh="10s")
            scenario.apply(faults_env, doc)
            world.wait_all(faults_api, ns, 1, timeout=60)
            proxy.stall()  # the operator hears nothing from here
            core.delete_namespaced_secret("s0", ns)
            faults.force_gone(plane)  # its watches must re-list: no DELETED will come
            proxy.resume(drop=True)
            time.sleep(15)  # refreshes come and go meanwhile
            forced = {"secretsync.io/force-sync": "after-the-gap"}
            begun = time.monotonic()
            scenario.apply(
                faults_env, {**doc, "metadata": {**doc["metadata"], "annotations": forced}}
            )
            world.wait_for(lambda: scenario.secret(faults_api, ns, "s0") is not None, 30)
            recreated = time.monotonic() - begun
            assert proc.poll() is None
    finally:
        proxy.close()
    figures(
        "a managed Secret deleted while the watch was broken (410)",
        recreated_by_forced_sync_s=round(recreated, 1),
    )
