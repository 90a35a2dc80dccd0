"""The cost of change checks at scale: the stores of the N SecretSyncs (each reading U/s
keys of its namespace) get `changeCheckInterval` for a window, and the Secrets Manager
calls of that window are counted by action. Before docs/design/0007, every check called
DescribeSecret once per key; now ListSecrets covers up to 100 keys a call."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from bench.sizes import Size
from bench.world import Layout, World, aws_store
from harness import scenario

log = logging.getLogger("bench.change_checks")
CHECK_ACTIONS = ("ListSecrets", "DescribeSecret")
SETTLE = 5.0  # a changed store re-syncs its SecretSyncs at once: not counted


def run(world: World, layout: Layout, size: Size) -> dict[str, Any]:
    interval = f"{size.check_interval:g}s"
    stores = [
        aws_store(ns, world.aws.url, extra={"changeCheckInterval": interval})
        for ns in layout.namespace_names()
    ]
    scenario.apply(world.env, *stores)
    time.sleep(SETTLE)
    start = time.time()
    time.sleep(size.check_window)
    end = time.time()
    found = world.aws_actions(start, end, layout.prefix)
    # Back to no change checks, so later scenarios count what they always did.
    scenario.apply(world.env, *(aws_store(ns, world.aws.url) for ns in layout.namespace_names()))
    calls = sum(n for action, n in found.items() if action in CHECK_ACTIONS)
    checks = layout.namespaces * size.check_window / size.check_interval
    keys_per_store = layout.unique // layout.namespaces
    per_check = calls / checks
    log.info("change checks: %d calls for %.0f checks of %d keys", calls, checks, keys_per_store)
    return {
        "stores": layout.namespaces,
        "keys_per_store": keys_per_store,
        "unique_remote_secrets": layout.unique,
        "interval_s": size.check_interval,
        "window_s": size.check_window,
        "checks": checks,
        "calls": found,
        "check_calls": calls,
        "calls_per_check": round(per_check, 2),
        "target_calls_per_check": math.ceil(keys_per_store / 100),
        # One DescribeSecret per key and check, as before 0007.
        "per_key_calls_per_check": keys_per_store,
        "cheaper_by": round(keys_per_store / per_check, 1) if per_check else None,
    }
