"""Two replicas with kopf peering: one writer in steady state, a fast hand-over, no double
write while they overlap; a replica that peering pauses (kopf's `freeze`: a peer of
higher priority) stops calling providers and writing, and starts again when resumed.

Before, the engine ran on by itself once kopf paused a replica's watches: a paused
replica kept refreshing (provider calls) and could write."""

from __future__ import annotations

import collections
import contextlib
import datetime
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from faults import replicas, world
from faults.size import FULL
from harness import devenv, faults, leasesetup, scenario, vaultengines, vaultsetup
from harness.audit import WRITE_VERBS, AuditLog
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

PEERING = "secretsync-faults"
SYNCS = 20


@pytest.fixture(scope="module")
def peering(faults_env: DevEnv) -> str:
    faults_env.kubectl(
        "apply", "-f", str(devenv.REPO / "charts/secretsync/crds/kopf.dev_peerings.yaml")
    )
    faults_env.wait_established("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
    scenario.apply(
        faults_env,
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}},
    )
    return PEERING


def _run(env: DevEnv, replica: replicas.Replica) -> contextlib.AbstractContextManager[Any]:
    return replicas.running(env, replica, "--peering", PEERING)


def _peers(api: Any) -> dict[str, Any]:
    obj: Any = kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", PEERING
    )
    return dict(obj.get("status") or {})


def _rotate(env: DevEnv, ns: str, i: int, values: set[bytes]) -> str:
    secret = world.value()
    values.add(secret.encode())
    vaultsetup.put(env, f"{ns}/k{i}", {"p": secret})
    return secret


def test_one_writer_a_quick_hand_over_and_no_double_write(
    peering: str,
    faults_env: DevEnv,
    faults_api: Any,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    a, b = replicas.make(faults_env, faults_api, ["a", "b"])
    ns = world.vault_team(faults_env, faults_api, "peers", server=faults_env.vault_addr)
    for i in range(SYNCS):
        _rotate(faults_env, ns, i, faults_values)
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    with contextlib.ExitStack() as b_running:
        with _run(faults_env, a):
            world.wait_for(lambda: a.role() == "active", 30)
            b_running.enter_context(_run(faults_env, b))
            world.wait_for(lambda: set(_peers(faults_api)) >= {"replica-a", "replica-b"}, 30)
            world.wait_for(lambda: b.role() == "standby", 30)
            world.apply_many(
                faults_env,
                [world.sync(ns, f"s{i}", f"{ns}/k{i}", refresh="5s") for i in range(SYNCS)],
            )
            world.wait_all(faults_api, ns, SYNCS, timeout=60)
            steady = time.time()
            latest = {}
            for round_ in range(4):  # changes to write, and refreshes every 5 s
                latest[round_] = _rotate(faults_env, ns, round_, faults_values)
                time.sleep(3)
            # Every change written (a status that says Synced may be one refresh older
            # than the last change): the hand-over below must have nothing left to apply
            # but the change made for it.
            world.wait_for(
                lambda: all(
                    scenario.secret_data(faults_api, ns, f"s{i}") == {"value": v.encode()}
                    for i, v in latest.items()
                ),
                30,
            )
            world.wait_for(lambda: not world.unsynced(faults_api, ns), 30)
            time.sleep(2)
            by_user = replicas.writes(audit, steady, time.time(), ns)
            assert by_user[a.user] > 0
            assert by_user[b.user] == 0, "the standby wrote"
            assert b.reads() == 0, "the standby read from the provider"
            assert b.active_metric() == 0.0
            new = _rotate(faults_env, ns, 7, faults_values)
            stopped = time.monotonic()
            overlap = time.time()
        # a has stopped (SIGTERM: a rolling update, a drain): b takes over and syncs.
        world.wait_for(
            lambda: scenario.secret_data(faults_api, ns, "s7") == {"value": new.encode()}, 90
        )
        handed_over = time.monotonic() - stopped
        assert b.role() == "active"
        time.sleep(6)
        writes = [
            r.name
            for r in audit.requests(
                overlap - 1, time.time(), namespace_prefix=ns, operator_only=False
            )
            if r.resource == "secrets" and r.verb in WRITE_VERBS
        ]
    figures(
        "two replicas: steady state, then the active one stops",
        secretsyncs=SYNCS,
        steady_writes_active=by_user[a.user],
        steady_writes_standby=by_user[b.user],
        standby_provider_reads=0,
        hand_over_to_first_sync_s=round(handed_over, 1),
        secret_writes_during_overlap=len(writes),
    )
    assert collections.Counter(writes)["s7"] == 1, writes
    assert writes == ["s7"], f"Secrets written during the hand-over: {writes}"


def test_a_frozen_replica_stops_acting_and_a_resumed_one_acts_again(
    peering: str,
    faults_env: DevEnv,
    faults_api: Any,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    (c,) = replicas.make(faults_env, faults_api, ["c"])
    ns = world.vault_team(faults_env, faults_api, "freeze", server=faults_env.vault_addr)
    for i in range(3):
        _rotate(faults_env, ns, i, faults_values)
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    custom = kubernetes.client.CustomObjectsApi(faults_api)

    def freeze(on: bool) -> None:
        # What `kopf freeze` does: a peer of higher priority appears in the group.
        now = datetime.datetime.now(datetime.UTC).isoformat()
        entry = {"priority": 2**62, "lifetime": 600, "lastseen": now} if on else None
        custom.patch_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", PEERING, {"status": {"freezer": entry}}
        )

    with _run(faults_env, c):
        world.wait_for(lambda: "Resuming operations" in c.log.read_text(), 30)
        world.apply_many(
            faults_env, [world.sync(ns, f"s{i}", f"{ns}/k{i}", refresh="3s") for i in range(3)]
        )
        world.wait_all(faults_api, ns, 3, timeout=60)
        freeze(True)
        # kopf says when it pauses the watches; the engine follows within its poll.
        world.wait_for(lambda: "Pausing operations" in c.log.read_text(), 30)
        time.sleep(6)  # the engine's peering poll is 5 s
        reads_before, start = c.reads(), time.time()
        frozen_value = _rotate(faults_env, ns, 0, faults_values)
        time.sleep(12)  # four refresh intervals
        reads_frozen = c.reads() - reads_before
        writes = replicas.writes(audit, start, time.time(), ns)[c.user]
        assert reads_frozen == 0, "the paused replica read from the provider"
        assert writes == 0, "the paused replica wrote"
        assert scenario.secret_data(faults_api, ns, "s0") != {"value": frozen_value.encode()}
        assert c.role() == "standby"
        assert c.active_metric() == 0.0
        freeze(False)
        resumed_at = time.monotonic()
        world.wait_for(
            lambda: scenario.secret_data(faults_api, ns, "s0") == {"value": frozen_value.encode()},
            60,
        )
        resumed_after = time.monotonic() - resumed_at
        assert c.role() == "active"
    figures(
        "a replica paused by peering (kopf freeze), then resumed",
        provider_reads_while_paused=reads_frozen,
        writes_while_paused=writes,
        synced_after_resume_s=round(resumed_after, 1),
    )
    assert reads_frozen == 0
    assert writes == 0


def test_a_failover_issues_no_new_lease(
    peering: str,
    faults_env: DevEnv,
    faults_api: Any,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    """Issued credentials (docs/design/0010-leases.md) survive a failover: the replica
    that takes over reads the lease state the other kept, and issues, revokes and writes
    nothing."""
    d, e = replicas.make(faults_env, faults_api, ["d", "e"])
    ns = world.namespace(faults_api, "leases")
    leasesetup.bind(faults_env, faults_api, ns)
    vaultengines.database_role(faults_env, ns, default_ttl="10m", max_ttl="1h")
    scenario.apply(faults_env, leasesetup.store(faults_env, ns))
    count = 3
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    with contextlib.ExitStack() as e_running:
        with _run(faults_env, d):
            world.wait_for(lambda: d.role() == "active", 30)
            e_running.enter_context(_run(faults_env, e))
            world.wait_for(lambda: e.role() == "standby", 30)
            world.apply_many(
                faults_env, [leasesetup.database_sync(ns, f"db{i}") for i in range(count)]
            )
            world.wait_all(faults_api, ns, count, timeout=60)
            before = sorted(leasesetup.database_leases(faults_env, ns))
            data = {i: scenario.secret_data(faults_api, ns, f"db{i}") for i in range(count)}
            for one in data.values():
                assert one is not None
                faults_values.add(one["password"])
            stopped = time.time()
        world.wait_for(lambda: e.role() == "active", 60)
        took_over = time.time() - stopped
        time.sleep(8)  # every SecretSync runs a round when a replica starts to act
        assert not world.unsynced(faults_api, ns)
        after = sorted(leasesetup.database_leases(faults_env, ns))
        writes = replicas.writes(audit, stopped, time.time(), ns)[e.user]
    figures(
        "issued credentials across a failover",
        leases_before=len(before),
        leases_after=len(after),
        take_over_s=round(took_over, 1),
        writes_by_the_new_replica=writes,
    )
    assert len(before) == count
    assert after == before, "the failover issued or revoked leases"
    assert {i: scenario.secret_data(faults_api, ns, f"db{i}") for i in range(count)} == data
    assert writes == 0, "the new replica rewrote Secrets it had no reason to"


if FULL:

    def test_a_killed_active_replica_is_replaced_within_its_heartbeat_lifetime(
        peering: str,
        faults_env: DevEnv,
        faults_api: Any,
        faults_values: set[bytes],
        figures: Callable[..., None],
    ) -> None:
        d, e = replicas.make(faults_env, faults_api, ["d", "e"])
        ns = world.vault_team(faults_env, faults_api, "killed", server=faults_env.vault_addr)
        _rotate(faults_env, ns, 0, faults_values)
        with _run(faults_env, d) as proc, _run(faults_env, e):
            world.wait_for(lambda: d.role() == "active" and e.role() == "standby", 60)
            scenario.apply(faults_env, world.sync(ns, "s0", f"{ns}/k0", refresh="5s"))
            world.wait_all(faults_api, ns, 1, timeout=60)
            new = _rotate(faults_env, ns, 0, faults_values)
            faults.kill(proc)  # no goodbye: its heartbeat must lapse first
            killed = time.monotonic()
            world.wait_for(
                lambda: scenario.secret_data(faults_api, ns, "s0") == {"value": new.encode()},
                150,
            )
            took = time.monotonic() - killed
        figures("the active replica is SIGKILLed", hand_over_to_first_sync_s=round(took, 1))
        assert took <= 90
