"""The operator's run-time configuration, parsed from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence
from typing import Literal

from secretsync.errors import ConfigError

LogFormat = Literal["json", "text"]
# A KopfPeering's name is an object name: a DNS-1123 subdomain.
_PEERING_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_SHARDS = 256


@dataclasses.dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    """What `secretsync run` was asked to do."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 8080  # 0 turns the endpoint off
    health_port: int = 8081  # 0 turns the endpoint off
    webhook_port: int = 0
    webhook_secret: tuple[str, str] | None = None  # (namespace, name)
    log_format: LogFormat = "text"
    log_level: str = "info"
    # Where the operator keeps its own state (the key of status.dataHash).
    state_namespace: str = "secretsync-system"
    # kopf peering (HA): the name of the ClusterKopfPeering (or of the KopfPeering in each
    # watched namespace) the replicas share; None runs standalone.
    peering: str | None = None
    # Sharding (docs/design/0009-sharding.md): the number of shard Leases the replicas
    # split the namespaces into, 0 for none; and the name their Leases share.
    shards: int = 0
    shard_group: str = "secretsync"
    # Watch ConfigMaps labelled secretsync.io/sops-document, so that a changed SOPS
    # document syncs at once (needs list and watch on ConfigMaps: chart rbac.sopsDocuments).
    watch_sops_documents: bool = False

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace."""
        return not self.namespaces


def from_args(args: argparse.Namespace) -> OperatorConfig:
    """Build the configuration from parsed `secretsync run` arguments."""
    namespaces: Sequence[str] = args.namespace or ()
    if args.all_namespaces and namespaces:
        raise ConfigError("--all-namespaces and --namespace exclude each other; pass one of them")
    secret: tuple[str, str] | None = None
    if args.webhook_secret:
        ns, sep, name = args.webhook_secret.partition("/")
        if not sep or not ns or not name:
            raise ConfigError(
                f"--webhook-secret must be NAMESPACE/NAME, got {args.webhook_secret!r}"
            )
        secret = (ns, name)
    if args.webhook_port and secret is None:
        raise ConfigError("--webhook-port needs --webhook-secret NAMESPACE/NAME for its HMAC key")
    for flag, port in (("--metrics-port", args.metrics_port), ("--health-port", args.health_port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{flag} must be between 0 and 65535, got {port}")
    if args.peering is not None and not _PEERING_NAME.match(args.peering):
        raise ConfigError(
            f"--peering must name a KopfPeering object (lower-case letters, digits, '-' and '.'), "
            f"got {args.peering!r}"
        )
    if args.shards < 0 or args.shards > MAX_SHARDS:
        raise ConfigError(f"--shards must be between 0 (off) and {MAX_SHARDS}, got {args.shards}")
    if args.shards and args.peering is not None:
        raise ConfigError(
            "--shards and --peering exclude each other: sharded replicas take over each "
            "other's shards, so they need no peering; pass one of them"
        )
    if not _PEERING_NAME.match(args.shard_group) or len(args.shard_group) > 40:
        raise ConfigError(
            "--shard-group must be at most 40 lower-case letters, digits, '-' and '.', "
            f"got {args.shard_group!r}"
        )
    return OperatorConfig(
        namespaces=tuple(namespaces),
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        webhook_port=args.webhook_port,
        webhook_secret=secret,
        log_format=args.log_format,
        log_level=args.log_level,
        state_namespace=args.state_namespace,
        peering=args.peering,
        shards=args.shards,
        shard_group=args.shard_group,
        watch_sops_documents=args.watch_sops_documents,
    )
