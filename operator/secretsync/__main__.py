"""The command line: `secretsync run`, `audit`, `convert` and `--version`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence

import kopf

from secretsync import __version__, audit, config, handlers, logs, probes
from secretsync.convert import cli as convert_cli
from secretsync.engine import state
from secretsync.engine.health import Health
from secretsync.errors import ConfigError
from secretsync.handlers import kopfstate
from secretsync.kube import Kube
from secretsync.metrics import Metrics
from secretsync.scan import cli as scan_cli

logger = logging.getLogger("secretsync")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, also used to print help."""
    parser = argparse.ArgumentParser(
        prog="secretsync",
        description="Keep Kubernetes Secrets in sync with external secret managers.",
    )
    parser.add_argument("--version", action="version", version=f"secretsync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Run the operator with the in-cluster ServiceAccount, else KUBECONFIG.",
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    scope.add_argument(
        "--namespace", action="append", metavar="NS", help="watch only this namespace (repeatable)"
    )
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus port; 0 = off")
    run.add_argument("--health-port", type=int, default=8081, help="/healthz port; 0 = off")
    run.add_argument("--webhook-port", type=int, default=0, help="rotation webhook port; 0 = off")
    run.add_argument(
        "--webhook-secret", metavar="NAMESPACE/NAME", help="Secret whose `key` signs webhook calls"
    )
    run.add_argument(
        "--state-namespace",
        default=os.environ.get("POD_NAMESPACE", "secretsync-system"),
        help="namespace of the operator's own state Secret (default: $POD_NAMESPACE, "
        "else secretsync-system)",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas: only the oldest live one acts, the others stand "
        "by (needs the ClusterKopfPeering NAME, or the KopfPeering NAME in each watched "
        "namespace)",
    )
    run.add_argument(
        "--shards",
        type=int,
        default=0,
        metavar="N",
        help="split the namespaces into N shards served by the replicas through Leases in "
        "the state namespace (each replica holds about N / replicas of them); 0 = off",
    )
    run.add_argument(
        "--shard-group",
        default="secretsync",
        metavar="NAME",
        help="the name the replicas' shard Leases share (default: secretsync)",
    )
    run.add_argument(
        "--watch-sops-documents",
        action="store_true",
        help="watch ConfigMaps labelled secretsync.io/sops-document, so that a changed SOPS "
        "document syncs at once (needs list and watch on ConfigMaps)",
    )
    run.add_argument("--log-format", choices=("json", "text"), default="text")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    scan_cli.add_parser(commands)
    convert_cli.add_parser(commands)
    return parser


async def _run(cfg: config.OperatorConfig) -> None:
    metrics = Metrics()
    if cfg.metrics_port:
        metrics.serve(cfg.metrics_port)
    kube = Kube.connect()
    try:
        # Before kopf starts: a missing state namespace is one clear line, not a crash.
        key = await state.hmac_key(kube, cfg.state_namespace)
        health = Health(
            kube=kube,
            engine=None,
            namespaces=cfg.namespaces,
            label_selector=handlers.MANAGED_SELECTOR,
        )
        server = await probes.start(health, port=cfg.health_port) if cfg.health_port else None
        settings = kopf.OperatorSettings()
        handlers.configure_settings(settings)
        identity, priority = _peering_identity(), _peering_priority()
        # Sharded: kopf watches what the shard Leases give this replica (handlers/kopfstate.py).
        insights = kopfstate.new_insights()
        namespaces = [kopfstate.NO_NAMESPACE] if cfg.shards else list(cfg.namespaces)
        try:
            await kopf.operator(
                registry=handlers.build_registry(cfg),
                settings=settings,
                clusterwide=cfg.clusterwide and not cfg.shards,
                namespaces=namespaces,
                insights=insights,
                memories=kopfstate.EventMemories(),
                standalone=cfg.peering is None,
                peering_name=cfg.peering,
                # kopf types it as its own NewType of str, which it does not export.
                identity=identity,  # type: ignore[arg-type]
                priority=priority,
                memo=SharedMemo(
                    config=cfg,
                    metrics=metrics,
                    kube=kube,
                    hmac_key=key,
                    health=health,
                    identity=identity,
                    priority=priority,
                    insights=insights,
                ),
            )
        finally:
            if server is not None:
                await probes.stop(server)
    finally:
        await kube.close()


class SharedMemo(kopf.Memo):
    """The operator's memo, shared by every object rather than copied for each: kopf
    gives each watched object a shallow copy of the memo (`copy.copy`), which is a few
    hundred bytes per SecretSync and per managed Secret, and the handlers keep nothing
    per object in it (the engine does)."""

    def __copy__(self) -> SharedMemo:
        return self


def _peering_identity() -> str:
    """This replica's name in the peering object: the Pod's name (POD_ID, as kopf reads
    it), else user@host and a start stamp. Chosen here rather than by kopf so that the
    engine's peering monitor knows which entry is its own."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{getpass.getuser()}@{socket.gethostname()}/{stamp}/{os.getpid()}"


def _peering_priority() -> int:
    """The oldest replica wins. kopf pauses every operator that sees a live peer of higher
    priority, so a priority that falls with the start time lets exactly one act, and a
    replica that starts later never takes over from one that is working. (On a tie kopf
    pauses both and logs a warning; in microseconds a tie is not a practical concern.)"""
    return -(time.time_ns() // 1000)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `secretsync` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "audit":
        return scan_cli.main(args)
    if args.command == "convert":
        return convert_cli.main(args)
    try:
        cfg = config.from_args(args)
    except ConfigError as exc:
        print(f"secretsync: {exc}", file=sys.stderr)  # noqa: T201 - CLI error before logging exists
        return 2
    logs.configure(log_format=cfg.log_format, level=cfg.log_level)
    audit.configure()
    try:
        asyncio.run(_run(cfg))
    except ConfigError as exc:
        print(f"secretsync: {exc}", file=sys.stderr)  # noqa: T201 - one line, then exit 2
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
