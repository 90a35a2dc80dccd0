"""`make bench` (full) and `make bench-smoke` (CI): run the scenarios, write the results.

    python -m bench.run --size full     # bench/results.json, docs/benchmarks.md and plots
    python -m bench.run --size smoke    # build/bench/smoke/results.json; fails on a wrong result

The environment (etcd, kube-apiserver with its audit log, kube-controller-manager,
OpenBao, moto) is started for the run and stopped after it, unless
SECRETSYNC_DEVENV_DIR names one that `python -m harness.devenv up --audit` started.
The exit status is non-zero when a scenario's result is wrong (a SecretSync never
Ready, a write in steady state, more writes than changes, a lost rotation); speed
targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes

from bench import machine, profile, report
from bench.monitor import Monitor
from bench.scenarios import change_checks, churn, cold_start, rotation, scale, steady_state
from bench.sizes import SIZES, Size
from bench.world import Layout, World, connect
from harness import devenv
from harness import operator as op
from harness.processes import EnvError, Processes, free_port
from secretsync.engine import shards

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("cold", "steady", "churn", "checks", "rotation", "scale", "huge", "sharded")
PREFIXES = ("bench-", "scale-", "rot-", "huge-", "shard-")  # the namespaces a run creates
SHARD_GROUP = "bench"


@contextlib.contextmanager
def environment(run_dir: Path) -> Iterator[devenv.DevEnv]:
    reuse = os.environ.get("SECRETSYNC_DEVENV_DIR")
    if reuse:
        state = Path(reuse) / "devenv.json"
        if not state.exists() or not any(s.alive() for s in Processes.load(Path(reuse)).started):
            raise EnvError(f"SECRETSYNC_DEVENV_DIR={reuse} holds no running environment")
        env = devenv.DevEnv.from_json(state.read_text())
        if env.audit_log is None:
            log.warning("the environment has no audit log: writes are counted by watches only")
        yield env
        return
    log.info("starting the environment in %s", run_dir)
    env, procs = devenv.start(run_dir, audit=True)
    try:
        yield env
    finally:
        devenv.stop(procs)
        # etcd's data (hundreds of MB after 10,000 objects) is of no use after the run;
        # the programs' logs and the audit log stay in the run folder.
        shutil.rmtree(run_dir / "etcd", ignore_errors=True)


@contextlib.contextmanager
def maybe_profiled(enabled: bool, pid: int, out: Path) -> Iterator[None]:
    if not enabled:
        yield
        return
    with profile.recording(pid, out):
        yield


def phase_a(world: World, size: Size, only: set[str], *, profiling: bool) -> dict[str, Any]:
    """Cold start, steady state, churn and rotation on one operator process."""
    results: dict[str, Any] = {}
    layout = Layout(
        prefix="bench", namespaces=size.namespaces, syncs=size.syncs, unique=size.unique
    )
    log.info("preparing %d namespaces, %d remote secrets", layout.namespaces, layout.unique)
    layout.prepare(world)
    setup = rotation.prepare(world, size, webhook_port=free_port()) if "rotation" in only else None
    args = rotation.operator_args(setup) if setup else []
    with world.operator("a", *args) as (pid, monitor):
        started = time.time()
        watch = world.watch("")
        try:
            stores = [(ns, "aws") for ns in layout.namespace_names()]
            if setup:
                stores += [(rotation.AWS_NS, n) for n in ("aws", "aws-check", "aws-sqs")]
                stores += [(rotation.VAULT_NS, "vault")]
            world.wait_stores(stores)
            results["operator_idle_rss_mib"] = round(monitor.last_rss("operator") / 2**20, 1)
            with maybe_profiled(profiling, pid, world.out / "profile-cold.txt"):
                results["cold_start"] = cold_start.run(
                    world, watch, monitor, layout, size, timeout=900
                )
            if not results["cold_start"]["all_ready_and_right"]:
                return results
            phase = 0.0
            if "steady" in only or "churn" in only:
                with maybe_profiled(profiling, pid, world.out / "profile-steady.txt"):
                    results["steady_state"] = steady_state.run(world, watch, monitor, layout, size)
                phase = results["steady_state"].pop("end_phase")
            if "churn" in only:
                with maybe_profiled(profiling, pid, world.out / "profile-churn.txt"):
                    results["churn"] = churn.run(world, watch, monitor, layout, size, phase=phase)
            if "checks" in only:
                results["change_checks"] = change_checks.run(world, layout, size)
            if setup is not None:
                results["rotation"] = rotation.run(world, watch, size, setup)
            results["phase_a_series"] = monitor.series("operator", started)
        finally:
            watch.stop()
    return results


def scale_layouts(size: Size) -> dict[str, tuple[Layout, int]]:
    """The scale scenarios: (layout, replicas) each."""
    huge = {
        "namespaces": size.huge_namespaces,
        "syncs": size.huge_syncs,
        "unique": size.huge_unique,
    }
    return {
        "scale": (
            Layout(
                prefix="scale",
                namespaces=size.namespaces,
                syncs=size.scale_syncs,
                unique=size.unique,
            ),
            1,
        ),
        "huge": (Layout(prefix="huge", **huge), 1),
        "sharded": (Layout(prefix="shard", **huge), size.replicas),
    }


def phase_b(
    world: World, size: Size, layout: Layout, replicas: int, *, profiling: bool
) -> dict[str, Any]:
    """Scale: fresh operator process(es) and N SecretSyncs; sharded when replicas > 1."""
    layout.prepare(world)
    args = ("--shards", str(size.shards), "--shard-group", SHARD_GROUP) if replicas > 1 else ()
    with world.operator(layout.prefix, *args, replicas=replicas) as (pid, monitor):
        started = time.time()
        watch = world.watch(f"{layout.prefix}-")
        try:
            world.wait_stores([(ns, "aws") for ns in layout.namespace_names()])
            with maybe_profiled(profiling, pid, world.out / f"profile-{layout.prefix}.txt"):
                figures = scale.run(
                    world, watch, monitor, layout, size, started=started, timeout=3600
                )
            if replicas > 1:
                figures["shards"] = size.shards
                figures["split"] = shard_split(world, monitor, layout, size)
        finally:
            watch.stop()
    return figures


def shard_split(world: World, monitor: Monitor, layout: Layout, size: Size) -> dict[str, Any]:
    """Who held which shard at the end, from the Leases: shards and layout namespaces per
    replica (a replica's Lease identity ends with its process id)."""
    names = {pid: name for name, pid in monitor.pids.items() if name.startswith("operator")}
    leases: Any = kubernetes.client.CoordinationV1Api(world.api).list_namespaced_lease(
        op.STATE_NAMESPACE, label_selector=f"secretsync.io/shard-group={SHARD_GROUP}"
    )
    holder_of: dict[int, str] = {}
    for lease in leases.items:
        name, holder = lease.metadata.name, lease.spec.holder_identity or ""
        if "-shard-" in name and holder:
            holder_of[int(name.rsplit("-", 1)[1])] = names.get(
                int(holder.rsplit("/", 1)[1]), holder
            )
    shards_by: dict[str, int] = {n: 0 for n in names.values()}
    namespaces_by: dict[str, int] = {n: 0 for n in names.values()}
    for name in holder_of.values():
        shards_by[name] = shards_by.get(name, 0) + 1
    for ns in layout.namespace_names():
        owner = holder_of.get(shards.shard_of(ns, size.shards), "")
        namespaces_by[owner] = namespaces_by.get(owner, 0) + 1
    return {"shards_by_replica": shards_by, "namespaces_by_replica": namespaces_by}


_NUMBERS = re.compile(r"\[\s*(-?[0-9][-0-9.e+]*(?:,\s*-?[0-9][-0-9.e+]*)*)\s*\]")


def dump(results: dict[str, Any]) -> str:
    """JSON with one key a line, but lists of numbers (samples, series) on one line each."""
    text = json.dumps(results, indent=1)
    return _NUMBERS.sub(lambda m: f"[{', '.join(n.strip() for n in m[1].split(','))}]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--results", type=Path, help="where results.json goes")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and its plots (default: with --size full)",
    )
    parser.add_argument(
        "--operator-source",
        type=Path,
        help="a folder holding a (scratch) copy of the secretsync package to run instead of "
        "the installed one, to measure a change",
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the operator's process (repeatable), to measure "
        "a setting",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record py-spy profiles of the operator (costs it some CPU)",
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="RESULTS_JSON",
        help="run nothing: rewrite docs/benchmarks.md and its plots from a results file",
    )
    args = parser.parse_args(argv)
    if args.from_results:
        report.write_docs(
            json.loads(args.from_results.read_text()),
            REPO / "docs" / "benchmarks.md",
            REPO / "docs" / "benchmarks",
        )
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in ("botocore", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    size = SIZES[args.size]
    only = set(args.only.split(","))
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if only & {"steady", "churn", "checks", "rotation"}:
        only.add("cold")
    out = REPO / "build" / "bench" / size.name
    out.mkdir(parents=True, exist_ok=True)
    results_path = args.results or (
        REPO / "bench" / "results.json" if size.name == "full" else out / "results.json"
    )
    docs = args.docs if args.docs is not None else size.name == "full"
    origin = time.time()
    results: dict[str, Any] = {
        "size": size.name,
        "parameters": dict(vars(size)),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(origin)),
        "machine": machine.describe(),
        "command": f"make bench{'-smoke' if size.name == 'smoke' else ''}",
        "scenarios": {},
    }
    run_dir = out / f"devenv-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        with environment(run_dir) as env:
            env.kubectl("apply", "-f", str(REPO / "crds"))
            env.wait_established("secretsyncs.secretsync.io", "secretstores.secretsync.io")
            world = connect(env, out, origin)
            world.operator_source = args.operator_source
            world.operator_env = dict(kv.split("=", 1) for kv in args.operator_env)
            if args.operator_env:
                results["operator_env"] = world.operator_env
            if args.operator_source:
                results["operator_source"] = str(args.operator_source)
            results["counting"] = {
                "provider_calls": "recording proxies in front of moto and OpenBao",
                "kube_writes": "kube-apiserver audit log" if env.audit_log else "watches only",
            }
            leftovers = world.leftovers(PREFIXES)
            if leftovers:
                log.info("deleting %d namespaces of an earlier run", len(leftovers))
                world.delete_namespaces(leftovers)
            try:
                previous: list[str] = []
                if only & {"cold", "steady", "churn", "checks", "rotation"}:
                    results["scenarios"].update(phase_a(world, size, only, profiling=args.profile))
                    previous = [f"bench-{k}" for k in range(size.namespaces)]
                    previous += [rotation.AWS_NS, rotation.VAULT_NS]
                for key, (layout, replicas) in scale_layouts(size).items():
                    if key not in only:
                        continue
                    if previous:
                        # One scenario's objects at a time in the cluster: a fresh
                        # operator lists every namespace it serves.
                        log.info("deleting the namespaces of the previous scenario")
                        log.info("deleted in %.0fs", world.delete_namespaces(previous))
                    log.info("%s: %d SecretSyncs on %d replica(s)", key, layout.syncs, replicas)
                    results["scenarios"][key] = phase_b(
                        world, size, layout, replicas, profiling=args.profile
                    )
                    previous = layout.namespace_names()
            finally:
                world.aws.stop()
                world.bao.stop()
    except EnvError as exc:
        log.error("the environment did not start: %s", exc)
        return 2
    results["duration_s"] = round(time.time() - origin, 1)
    results["targets"] = report.targets(results)
    results["checks"] = report.checks(results, only)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(dump(results))
    log.info("results in %s (%.0fs)", results_path, results["duration_s"])
    if docs:
        report.write_docs(results, REPO / "docs" / "benchmarks.md", REPO / "docs" / "benchmarks")
    for target in results["targets"]:
        log.info(
            "target %-45s %-10s %s",
            target["name"],
            target["value"],
            "met" if target["met"] else "NOT MET",
        )
    failed = [c for c in results["checks"] if not c["ok"]]
    for check in failed:
        log.error("wrong result: %s (%s)", check["name"], check["detail"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
