"""Scenario 2, steady state: refreshes of N SecretSyncs with nothing changed remotely.
Per refresh cycle: provider calls by operation, Secret and status writes, the operator's
CPU seconds. Windows start in the quietest part of the refresh period, so each holds
exactly one refresh of every store."""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.monitor import Monitor
from bench.scenarios.common import (
    counts,
    kube_writes,
    next_boundary,
    process_figures,
    quiet_phase,
    sleep_until,
)
from bench.sizes import Size
from bench.watch import ClusterWatch
from bench.world import SECRETS_MANAGER_ACTIONS, Layout, World

log = logging.getLogger("bench.steady_state")
LAG = 1.0  # after a window ends, before it is counted (the audit log is written on response)


def window(
    world: World, watch: ClusterWatch, monitor: Monitor, prefix: str, start: float, end: float
) -> dict[str, Any]:
    """Everything counted in one window of the refresh period."""
    found = counts(world, start, end, prefix)
    kube = found["kube_requests"]
    changes = watch.count(start, end, prefix)
    return {
        "start_s": round(start - world.origin, 2),
        **found,
        "secretsmanager_calls": sum(
            n for action, n in found["aws_calls"].items() if action in SECRETS_MANAGER_ACTIONS
        ),
        "secret_writes": kube_writes(kube, "secrets"),
        "status_writes": kube_writes(kube, "secretsyncs/status"),
        "events_posted": kube_writes(kube, "events"),
        "secret_reads": None if kube is None else kube.get("get secrets", 0),
        # Every request of the operator the audit log records (Secrets, Events, tokens,
        # SecretSyncs and stores, workloads), reads included.
        "kube_requests_total": None if kube is None else sum(kube.values()),
        "watch_changes": changes,
        "secret_changes_seen": sum(n for k, n in changes.items() if k.endswith(" Secret")),
        "secretsync_changes_seen": sum(n for k, n in changes.items() if k.endswith("SecretSync")),
        **process_figures(monitor, start, end),
    }


def run(
    world: World, watch: ClusterWatch, monitor: Monitor, layout: Layout, size: Size
) -> dict[str, Any]:
    interval = size.refresh
    # The first refresh after the cold start may still be split (SecretSyncs that became
    # Ready on either side of their store's refresh time); from the second on, a store's
    # SecretSyncs are due together.
    log.info("steady state: one warm-up period of %.0fs", interval)
    warm = time.time()
    sleep_until(warm + interval + 2)
    phase = quiet_phase(world, warm, time.time(), interval)
    first = next_boundary(time.time(), interval, phase)
    cycles = []
    for k in range(size.steady_cycles):
        start, end = first + k * interval, first + (k + 1) * interval
        sleep_until(end + LAG)
        cycles.append(window(world, watch, monitor, layout.prefix, start, end))
        log.info(
            "steady state: cycle %d: %d Secrets Manager calls, %s Secret writes, %s status writes",
            k + 1,
            cycles[-1]["secretsmanager_calls"],
            cycles[-1]["secret_writes"],
            cycles[-1]["status_writes"],
        )
    return {
        "syncs": layout.syncs,
        "unique_remote_secrets": layout.unique,
        "stores": layout.namespaces,
        "refresh_interval_s": interval,
        "phase_s": round(phase, 2),
        "cycles": cycles,
        "max_secretsmanager_calls_per_cycle": max(c["secretsmanager_calls"] for c in cycles),
        "target_secretsmanager_calls_per_cycle": size.steady_call_target,
        "total_secret_writes": _total(cycles, "secret_writes"),
        "total_status_writes": _total(cycles, "status_writes"),
        "total_secret_changes_seen": sum(c["secret_changes_seen"] for c in cycles),
        "total_secretsync_changes_seen": sum(c["secretsync_changes_seen"] for c in cycles),
        "max_kube_requests_per_cycle": max((c["kube_requests_total"] or 0) for c in cycles),
        "max_operator_cpu_s_per_cycle": max(c["operator_cpu_s"] for c in cycles),
        "mean_operator_cpu_s_per_cycle": round(
            sum(c["operator_cpu_s"] for c in cycles) / len(cycles), 2
        ),
        "end_phase": phase,
    }


def _total(cycles: list[dict[str, Any]], field: str) -> int | None:
    values = [c[field] for c in cycles]
    return None if any(v is None for v in values) else sum(values)
