"""The plots of docs/benchmarks.md (PNG, matplotlib), drawn from results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

DPI = 110


def draw(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """Every plot the results allow; returns title -> file."""
    s = results["scenarios"]
    drawn: dict[str, Path] = {}
    if "cold_start" in s or "scale" in s:
        drawn["Cold start: SecretSyncs Ready with the right data over time"] = _ready(s, out)
    if "steady_state" in s:
        drawn["Steady state: provider calls and writes per refresh cycle"] = _steady(s, out)
    if "churn" in s:
        drawn["Churn: writes per cycle against the Secrets really affected"] = _churn(s, out)
    if "scale" in s:
        drawn["Scale: operator RSS and CPU while syncing and at rest"] = _scale(s, out)
    if "rotation" in s:
        drawn["Rotation latency by path"] = _rotation(s, out)
    return drawn


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _ready(s: dict[str, Any], out: Path) -> Path:
    names = [n for n in ("cold_start", "scale") if n in s]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        r = s[name]
        times = r["timeline_s"]
        total = r["syncs"]
        # timeline_s may be downsampled: spread the counts evenly over it
        counts = [round((i + 1) * total / len(times)) for i in range(len(times))]
        ax.step([0.0, *times], [0, *counts], where="post", color="tab:blue")
        ax.axvline(
            r["apply_s"], color="grey", linestyle=":", label=f"apply done ({r['apply_s']} s)"
        )
        if name == "cold_start":
            ax.axvline(60, color="tab:red", linestyle="--", label="target 60 s")
        ax.set_title(f"N = {total:,}: all Ready after {r['ready_s']} s")
        ax.set_xlabel("seconds since the apply began")
        ax.set_ylabel("SecretSyncs Ready, Secret right")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    return _save(fig, out / "cold_start.png")


def _steady(s: dict[str, Any], out: Path) -> Path:
    st = s["steady_state"]
    cycles = st["cycles"]
    xs = list(range(1, len(cycles) + 1))
    actions = sorted({a for c in cycles for a in c["aws_calls"]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    bottom = [0] * len(cycles)
    for action in actions:
        heights = [c["aws_calls"].get(action, 0) for c in cycles]
        left.bar(xs, heights, bottom=bottom, label=action)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    left.axhline(
        st["target_secretsmanager_calls_per_cycle"],
        color="tab:red",
        linestyle="--",
        label=f"target {st['target_secretsmanager_calls_per_cycle']}",
    )
    left.set_title(f"AWS calls per cycle (N = {st['syncs']:,}, U = {st['unique_remote_secrets']})")
    left.set_xlabel("refresh cycle")
    left.set_xticks(xs)
    left.set_ylabel("calls")
    left.legend(loc="lower right")
    width = 0.25
    secret = [c["secret_writes"] or c["secret_changes_seen"] for c in cycles]
    status = [c["status_writes"] or c["secretsync_changes_seen"] for c in cycles]
    right.bar([x - width for x in xs], secret, width, label="Secret writes")
    right.bar(xs, status, width, label="status writes")
    right.set_ylim(0, max(5, *secret, *status) * 1.2)
    right.set_ylabel("writes")
    right.set_xlabel("refresh cycle")
    right.set_xticks(xs)
    twin = right.twinx()
    twin.plot(
        xs,
        [c["operator_cpu_s"] for c in cycles],
        color="tab:green",
        marker="o",
        label="operator CPU s",
    )
    twin.set_ylabel("operator CPU seconds")
    twin.set_ylim(bottom=0)
    right.set_title("writes (zero expected) and operator CPU per cycle")
    handles = right.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    right.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], loc="lower right")
    return _save(fig, out / "steady_state.png")


def _churn(s: dict[str, Any], out: Path) -> Path:
    ch = s["churn"]
    cycles = ch["cycles"]
    xs = list(range(1, len(cycles) + 1))
    width = 0.25
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        [x - width for x in xs],
        [c["affected_secrets"] for c in cycles],
        width,
        label="Secrets affected",
    )
    ax.bar(
        xs,
        [c["secret_writes"] or c["secret_changes_seen"] for c in cycles],
        width,
        label="Secret writes",
    )
    ax.bar(
        [x + width for x in xs],
        [c["status_writes"] or 0 for c in cycles],
        width,
        label="status writes",
    )
    ax.set_title(f"{ch['changed_per_cycle']} remote changes per cycle, N = {ch['syncs']:,}")
    ax.set_xlabel("churn cycle")
    ax.set_xticks(xs)
    ax.set_ylabel("count")
    ax.legend(loc="lower right")
    return _save(fig, out / "churn.png")


def _scale(s: dict[str, Any], out: Path) -> Path:
    sc = s["scale"]
    series = sc["series"]
    t, rss, cpu = series["t"], series["rss_mib"], series["cpu_s"]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, rss, color="tab:blue", label="RSS MiB")
    ax.axhline(250, color="tab:red", linestyle="--", label="target 250 MiB")
    ax.axvline(sc["ready_s"], color="grey", linestyle=":", label="all Ready")
    ax.set_xlabel("seconds since the apply began")
    ax.set_ylabel("RSS MiB")
    ax.set_ylim(bottom=0)
    twin = ax.twinx()
    rates = [0.0] + [
        100 * (cpu[i] - cpu[i - 1]) / max(t[i] - t[i - 1], 1e-3) for i in range(1, len(t))
    ]
    window = 4  # smooth over 2 s
    smooth = [
        sum(rates[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(rates))
    ]
    twin.plot(t, smooth, color="tab:orange", alpha=0.7, label="CPU % of one core")
    twin.set_ylabel("CPU %")
    twin.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], loc="center right")
    ax.set_title(f"operator process, N = {sc['syncs']:,}: peak {sc['peak_rss_mib']} MiB")
    return _save(fig, out / "scale.png")


def _rotation(s: dict[str, Any], out: Path) -> Path:
    paths = s["rotation"]["paths"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for path in paths.values():
        values = sorted(path["latencies_s"])
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(
            values,
            ys,
            where="post",
            label=f"{path['label']}: p50 {path['p50_s']} s, p99 {path['p99_s']} s",
        )
    ax.axvline(2.0, color="tab:red", linestyle="--", label="target p99 2 s")
    ax.set_xscale("log")
    ax.set_xlabel("seconds from the change to the Secret holding it (log)")
    ax.set_ylabel("fraction of rotations")
    ax.set_title("rotation latency, cumulative")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_ylim(0, 1.6)  # room for the legend above the curves
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.grid(alpha=0.3)
    return _save(fig, out / "rotation.png")
