"""Objects come and go by the thousand: what the operator keeps per SecretSync, store and
identity goes with them. Memory stays flat (the `secretsync_tracked` gauges return to
where they were, and RSS does not climb with the cycles)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faults import world
from faults.size import FULL
from harness import operator as op
from harness import scenario, vaultsetup
from harness.devenv import DevEnv
from harness.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

BATCH = 100  # stores, each with a SecretSync, created and deleted together
BATCHES = 100 if FULL else 10
LATE_SLACK = 4 * 2**20  # allocator noise over the second half of the run
LATE_PER_CYCLE = 2048  # bytes a cycle may add over the second half (see the assertion)


def _tracked(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "secretsync_tracked"
        for sample in family.samples
    }


def _store(env: DevEnv, ns: str, name: str) -> dict[str, Any]:
    store = vaultsetup.store(env, ns, name=name)
    return store


def test_thousands_of_create_delete_cycles_leave_memory_flat(
    faults_env: DevEnv, faults_api: Any, faults_log: Path, figures: Callable[..., None]
) -> None:
    ns = world.vault_team(faults_env, faults_api, "churn", server=faults_env.vault_addr)
    vaultsetup.put(faults_env, f"{ns}/k0", {"p": "churn-value"})
    custom = kubernetes.client.CustomObjectsApi(faults_api)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    samples: list[int] = []
    with op.running(faults_env, faults_log, metrics_port=port) as proc:
        scenario.store_ready(faults_api, "SecretStore", ns, "vault")
        baseline = _tracked(url)
        rss = psutil.Process(proc.pid)
        for batch in range(BATCHES):
            docs: list[dict[str, Any]] = []
            for i in range(BATCH):
                docs.append(_store(faults_env, ns, f"st-{i}"))
                docs.append(world.sync(ns, f"c-{i}", f"{ns}/k0", store=f"st-{i}"))
            world.apply_many(faults_env, docs)
            world.wait_all(faults_api, ns, BATCH, timeout=120)
            for plural in ("secretsyncs", "secretstores"):
                custom.delete_collection_namespaced_custom_object(
                    scenario.GROUP, scenario.VERSION, ns, plural
                )
            world.wait_for(
                lambda: all(
                    _tracked(url).get(kind, 0) <= baseline.get(kind, 0)
                    for kind in ("secretsyncs", "stores")
                ),
                60,
                state=lambda: (baseline, _tracked(url)),
            )
            samples.append(int(rss.memory_info().rss))
            if batch == 0:
                time.sleep(2)  # the first batch warms caches; measure from here
        world.wait_for(
            lambda: all(
                _tracked(url).get(kind, 0) <= baseline.get(kind, 0)
                for kind in ("sessions", "clients", "backends", "budgets", "circuits", "tasks")
            ),
            30,
            state=lambda: (baseline, _tracked(url)),
        )
        after = _tracked(url)
        assert proc.poll() is None
    figures(
        "create/delete cycles of a store and its SecretSync",
        cycles=BATCH * BATCHES,
        tracked_before=baseline,
        tracked_after=after,
        rss_after_first_batch_mib=round(samples[0] / 2**20, 1),
        rss_at_half_mib=round(samples[len(samples) // 2] / 2**20, 1),
        rss_at_end_mib=round(samples[-1] / 2**20, 1),
        rss_every_tenth_batch_mib=[round(r / 2**20, 1) for r in samples[::10]],
        rss_growth_second_half_bytes_per_cycle=round(
            (samples[-1] - samples[len(samples) // 2])
            / max(1, BATCH * (len(samples) - 1 - len(samples) // 2))
        ),
    )
    # The allocator settles over the first cycles (pymalloc arenas, the TLS and HTTP
    # pools), so growth is judged on the second half. Measured at full size: about 1 KiB
    # a cycle there, which Python's own heap does not show (tracemalloc: flat), so
    # allocator fragmentation or native memory, not kept state (the gauges above are
    # back at their start). What the operator keeps per SecretSync and store is several
    # KiB: keeping it after deletion would fail this bound.
    late = samples[-1] - samples[len(samples) // 2]
    cycles = BATCH * (len(samples) - 1 - len(samples) // 2)
    assert late < max(LATE_SLACK, cycles * LATE_PER_CYCLE), (
        f"RSS grew {late / 2**20:.1f} MiB over the last {cycles} cycles"
    )
