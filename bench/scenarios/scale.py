"""Scenario 4, scale: N SecretSyncs (10,000 and 30,000 in the full run) on a fresh
operator process, or on sharded replicas; peak RSS and CPU of each while they sync, and
then at rest."""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.monitor import Monitor
from bench.scenarios.common import counts, downsample, percentile, process_figures, sleep_until
from bench.sizes import Size
from bench.watch import ClusterWatch
from bench.world import Convergence, Layout, World

log = logging.getLogger("bench.scale")
REFRESH = "24h"  # no refresh falls into the rest window (refreshes are aligned per store)


def run(
    world: World,
    watch: ClusterWatch,
    monitor: Monitor,
    layout: Layout,
    size: Size,
    *,
    started: float,
    timeout: float,
) -> dict[str, Any]:
    time.sleep(2)
    operators = [n for n in monitor.names() if n.startswith("operator")]
    idle = {name: monitor.last_rss(name) for name in operators}
    idle_rss = idle["operator"]
    expected = layout.expected(world.values)
    convergence = Convergence(watch, expected)
    manifests = layout.manifests(REFRESH)
    log.info("scale: applying %d SecretSyncs", len(manifests))
    start = time.time()
    world.kubectl_apply(manifests)
    applied = time.time()
    try:
        convergence.wait(timeout)
        ok = True
    except TimeoutError:
        ok = False
    finally:
        convergence.close()
    done = sorted(convergence.done.values())
    end = done[-1] if ok else time.time()
    log.info(
        "scale: %d/%d ready in %.0fs; resting %.0fs",
        len(done),
        len(expected),
        end - start,
        size.rest_seconds,
    )
    settle = time.time() + 5  # the last status writes and Events
    rest_start = settle
    rest_end = rest_start + size.rest_seconds
    sleep_until(rest_end)
    syncing = process_figures(monitor, start, end)
    rest = process_figures(monitor, rest_start, rest_end)
    elapsed = [t - start for t in done]
    rest_calls = world.aws_actions(rest_start, rest_end, layout.prefix)
    replicas = {
        name: {
            "rss_before_mib": round(idle[name] / 2**20, 1),
            "peak_rss_mib": round(monitor.peak_rss(name, started, rest_end) / 2**20, 1),
            "rest_rss_mib": round(monitor.last_rss(name) / 2**20, 1),
            "cpu_s_syncing": round(monitor.cpu(name, start, end), 2),
            "cpu_s_rest": round(monitor.cpu(name, rest_start, rest_end), 2),
        }
        for name in operators
    }
    grown = sum(monitor.last_rss(name) - idle[name] for name in operators)
    return {
        "replicas": replicas,
        # What one SecretSync costs the operator(s) at rest: RSS grown over the idle
        # process, per SecretSync (KiB; includes kopf's per-object state).
        "rss_per_sync_kib": round(grown / 1024 / max(len(expected), 1), 2),
        "syncs": len(expected),
        "unique_remote_secrets": layout.unique,
        "namespaces": layout.namespaces,
        "refresh_interval": REFRESH,
        "all_ready_and_right": ok,
        "pending": convergence.pending(),
        "apply_s": round(applied - start, 1),
        "ready_s": round(end - start, 1),
        "p50_ready_s": round(percentile(elapsed, 50), 1),
        "timeline_s": downsample(elapsed),
        "rss_before_mib": round(idle_rss / 2**20, 1),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in replicas.values()),
        "syncing": {
            **syncing,
            "seconds": round(end - start, 1),
            "operator_cpu_percent": round(
                100 * syncing["operator_cpu_s"] / max(end - start, 1e-9), 1
            ),
            **counts(world, start, end + 1, layout.prefix),
        },
        "rest": {
            **rest,
            "seconds": size.rest_seconds,
            "operator_cpu_percent": round(100 * rest["operator_cpu_s"] / size.rest_seconds, 2),
            "rss_mib": round(monitor.last_rss("operator") / 2**20, 1),
            "aws_calls": rest_calls,
        },
        "series": monitor.series("operator", start),
    }
