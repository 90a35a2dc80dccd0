"""Small pieces the scenarios share."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import psutil

from bench.monitor import Monitor
from bench.world import World
from harness.audit import writes


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank: a value that was really observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def process_figures(monitor: Monitor, start: float, end: float) -> dict[str, Any]:
    """CPU seconds of every monitored process and the operator's peak RSS in a window."""
    monitor.sample()
    by_process = {name: round(monitor.cpu(name, start, end), 2) for name in monitor.names()}
    machine = round(monitor.cpu("machine", start, end), 2)
    return {
        "operator_cpu_s": by_process["operator"],
        "operator_peak_rss_mib": round(monitor.peak_rss("operator", start, end) / 2**20, 1),
        "cpu_s_by_process": by_process,
        # Busy CPU of the whole machine, and the part no monitored process accounts for
        # (other workloads on the host disturb the figures when this is large).
        "machine_cpu_s": machine,
        "other_cpu_s": round(max(0.0, machine - sum(by_process.values())), 2),
        "machine_cores": psutil.cpu_count(),
    }


def counts(world: World, start: float, end: float, prefix: str) -> dict[str, Any]:
    """Everything counted outside the operator in a window."""
    return {
        "aws_calls": world.aws_actions(start, end, prefix),
        "vault_requests": world.bao_requests(start, end),
        "kube_requests": world.kube_requests(start, end, prefix),
    }


def downsample(values: Sequence[float], points: int = 400) -> list[float]:
    if len(values) <= points:
        return [round(v, 3) for v in values]
    step = len(values) / points
    picked = [values[int(i * step)] for i in range(points)]
    return [round(v, 3) for v in [*picked, values[-1]]]


def quiet_phase(world: World, start: float, end: float, interval: float) -> float:
    """The middle of the longest stretch of a refresh period in which no store refreshed
    (seen between start and end, at least one period): windows of one period that begin
    there hold exactly one refresh of every store. Refreshes are aligned to wall-clock
    multiples of the interval, so the phase is taken modulo the interval."""
    stamps = [
        c.at + world.mono_offset
        for c in world.calls(world.aws, start, end)
        if c.action == "BatchGetSecretValue"
    ]
    return largest_gap_middle(stamps, interval)


def largest_gap_middle(times: Sequence[float], interval: float) -> float:
    """The middle of the longest gap between the times, taken modulo the interval (the
    gap that wraps around the end of the period counts too); 0 without times."""
    stamps = sorted(t % interval for t in times)
    if not stamps:
        return 0.0
    best_gap, best_mid = -1.0, 0.0
    for i, here in enumerate(stamps):
        following = stamps[(i + 1) % len(stamps)] + (interval if i == len(stamps) - 1 else 0.0)
        gap = following - here
        if gap > best_gap:
            best_gap, best_mid = gap, (here + gap / 2) % interval
    return best_mid


def next_boundary(now: float, interval: float, phase: float) -> float:
    """The first time after now whose remainder modulo interval is phase."""
    base = now - (now % interval) + phase
    while base <= now:
        base += interval
    return base


def sleep_until(when: float) -> None:
    while True:
        left = when - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 1.0))


def kube_writes(kube: dict[str, int] | None, resource: str) -> int | None:
    return None if kube is None else writes(kube, resource)
