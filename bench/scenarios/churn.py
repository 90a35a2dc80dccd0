"""Scenario 3, churn: a fraction of the remote secrets change each refresh cycle; the
writes must be exactly the affected Secrets (and their statuses), not N.

The changes are made at the start of each window (in the quiet part of the refresh
period, as in the steady state), one window after the other; each window is counted
once it is over, from the proxies, the audit log and the watches, which all keep time."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import random
import time
from typing import Any

from bench.monitor import Monitor
from bench.scenarios.common import next_boundary, sleep_until
from bench.scenarios.steady_state import LAG, window
from bench.sizes import Size
from bench.watch import ClusterWatch, Key
from bench.world import Layout, World

log = logging.getLogger("bench.churn")
CHECK_AHEAD = 0.3  # the check that a window's changes arrived, just before it ends


@dataclasses.dataclass(kw_only=True)
class _Cycle:
    start: float
    end: float
    changed: list[str]
    affected: set[Key]
    expected: dict[Key, dict[str, bytes]]
    rotate_s: float
    arrived: bool = False


def run(
    world: World,
    watch: ClusterWatch,
    monitor: Monitor,
    layout: Layout,
    size: Size,
    *,
    phase: float,
    seed: int = 6,
) -> dict[str, Any]:
    interval = size.refresh
    rng = random.Random(seed)  # noqa: S311 - picks secrets to change, not keys
    reads = layout.reads()
    keys = layout.all_keys()
    done: list[_Cycle] = []
    start = next_boundary(time.time(), interval, phase)
    for _ in range(size.churn_cycles):
        sleep_until(start)
        changed = rng.sample(keys, size.churned)
        begun = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(world.rotate, changed))
        moved = set(changed)
        cycle = _Cycle(
            start=start,
            end=start + interval,
            changed=changed,
            affected={key for key, pair in reads.items() if moved & set(pair)},
            expected={
                k: {"a": world.values[a], "b": world.values[b]} for k, (a, b) in reads.items()
            },
            rotate_s=time.time() - begun,
        )
        # Did every affected Secret get its new data within the window?
        sleep_until(cycle.end - CHECK_AHEAD)
        with watch.lock():
            cycle.arrived = all(_holds(watch, key, cycle.expected[key]) for key in cycle.affected)
        done.append(cycle)
        start = cycle.end
        log.info(
            "churn: %d remote changes -> %d affected Secrets%s",
            len(changed),
            len(cycle.affected),
            "" if cycle.arrived else " (not all updated within the window)",
        )
    sleep_until(done[-1].end + LAG)
    cycles = [_count(world, watch, monitor, layout, c) for c in done]
    for c in cycles:
        log.info(
            "churn: %d affected; %s Secret writes, %s status writes",
            c["affected_secrets"],
            c["secret_writes"],
            c["status_writes"],
        )
    return {
        "syncs": layout.syncs,
        "changed_per_cycle": size.churned,
        "fraction": size.churn_fraction,
        "cycles": cycles,
        "writes_equal_affected": all(
            c["secret_writes"] in (None, c["affected_secrets"])
            and c["secret_changes_seen"] == c["affected_secrets"]
            and c["modified_secrets_are_the_affected"]
            and c["arrived_in_window"]
            for c in cycles
        ),
        "status_writes_equal_affected": all(
            c["status_writes"] in (None, c["affected_secrets"]) for c in cycles
        ),
    }


def _count(
    world: World, watch: ClusterWatch, monitor: Monitor, layout: Layout, cycle: _Cycle
) -> dict[str, Any]:
    with watch.lock():
        modified = {
            c.key
            for c in watch.changes
            if cycle.start <= c.at < cycle.end
            and c.kind == "Secret"
            and c.key[0].startswith(layout.prefix)
        }
    figures = window(world, watch, monitor, layout.prefix, cycle.start, cycle.end)
    return {
        **figures,
        "changed_remote_secrets": len(cycle.changed),
        "affected_secrets": len(cycle.affected),
        "rotate_s": round(cycle.rotate_s, 2),
        "arrived_in_window": cycle.arrived,
        "modified_secrets_are_the_affected": modified == cycle.affected,
        "unaffected_secrets_modified": len(modified - cycle.affected),
    }


def _holds(watch: ClusterWatch, key: Key, data: dict[str, bytes]) -> bool:
    secret = watch.secrets.get(key)
    return secret is not None and secret.data == data
