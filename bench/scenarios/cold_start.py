"""Scenario 1, cold start: N SecretSyncs (2 keys each over U remote secrets, one store per
namespace) applied at once; the time until every one is Ready and every Secret holds the
right data."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from bench.monitor import Monitor
from bench.scenarios.common import counts, downsample, percentile, process_figures
from bench.sizes import Size
from bench.watch import ClusterWatch
from bench.world import Convergence, Layout, World

log = logging.getLogger("bench.cold_start")
BATCH_IDS = 20  # BatchGetSecretValue asks for at most 20 secret ids


def run(
    world: World,
    watch: ClusterWatch,
    monitor: Monitor,
    layout: Layout,
    size: Size,
    *,
    timeout: float,
) -> dict[str, Any]:
    refresh = f"{size.refresh:g}s"
    expected = layout.expected(world.values)
    convergence = Convergence(watch, expected)
    manifests = layout.manifests(refresh)
    log.info("cold start: applying %d SecretSyncs", len(manifests))
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
    done_times = sorted(convergence.done.values())
    end = done_times[-1] if ok else time.time()
    time.sleep(1)  # the last status writes and Events land in the audit log
    elapsed = [t - start for t in done_times]
    asked = world.batch_ids(start, end + 1, layout.prefix)
    per_namespace = layout.unique // layout.namespaces
    result = {
        # The fewest BatchGetSecretValue calls that read every key once: 20 ids a call,
        # one identity (so one batch) per namespace.
        "minimum_batch_calls": layout.namespaces * math.ceil(per_namespace / BATCH_IDS),
        "ids_asked": sum(asked.values()),
        "unique_ids_asked": len(asked),
        "first_ready_s": round(elapsed[0], 2) if elapsed else None,
        "syncs": len(expected),
        "unique_remote_secrets": size.unique,
        "namespaces": layout.namespaces,
        "refresh_interval_s": size.refresh,
        "apply_s": round(applied - start, 2),
        "ready_s": round(end - start, 2),
        "ready_after_apply_s": round(end - applied, 2),
        "p50_ready_s": round(percentile(elapsed, 50), 2),
        "all_ready_and_right": ok,
        "pending": convergence.pending(),
        "timeline_s": downsample(elapsed),
        **counts(world, start, end + 1, layout.prefix),
        "watch_changes": watch.count(start, end + 1, layout.prefix),
        **process_figures(monitor, start, end),
    }
    log.info(
        "cold start: %d/%d ready in %.1fs (apply %.1fs)",
        len(done_times),
        len(expected),
        end - start,
        applied - start,
    )
    return result
