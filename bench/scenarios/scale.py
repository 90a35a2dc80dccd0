"""Scenario 4, scale: N SecretSyncs (10,000 in the full run) on one fresh operator
process; its peak RSS and CPU while they sync, and then at rest."""

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
    idle_rss = monitor.last_rss("operator")
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
    return {
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
        "peak_rss_mib": round(monitor.peak_rss("operator", started, rest_end) / 2**20, 1),
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
