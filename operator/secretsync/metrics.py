"""Prometheus metrics, kept in one registry built at start-up (never at import).

Labels carry kinds, outcomes and operations: never a key name or a value.
"""

from __future__ import annotations

import prometheus_client

from secretsync import __version__

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The operator's metrics."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.build_info = prometheus_client.Info(
            "secretsync_build", "Version of the running operator.", registry=self.registry
        )
        self.build_info.info({"version": __version__})
        self.syncs = prometheus_client.Counter(
            "secretsync_syncs",
            "SecretSync runs by outcome (unchanged, updated, created, failed reason).",
            ["outcome"],
            registry=self.registry,
        )
        self.sync_duration = prometheus_client.Histogram(
            "secretsync_sync_duration_seconds",
            "Time to sync one batch of SecretSyncs of one identity.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.provider_calls = prometheus_client.Counter(
            "secretsync_provider_calls",
            "Provider API calls by provider, operation and outcome.",
            ["provider", "operation", "outcome"],
            registry=self.registry,
        )
        self.remote_reads = prometheus_client.Counter(
            "secretsync_remote_reads",
            "Remote secret reads recorded in the audit log, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.logins = prometheus_client.Counter(
            "secretsync_logins",
            "Provider logins (one per identity per credential lifetime).",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.secret_writes = prometheus_client.Counter(
            "secretsync_secret_writes",
            "Secret writes by operation (create, update, delete).",
            ["operation"],
            registry=self.registry,
        )

        self.events_received = prometheus_client.Counter(
            "secretsync_events_received",
            "Rotation events received, by source (sqs, webhook).",
            ["source"],
            registry=self.registry,
        )
        self.events_matched = prometheus_client.Counter(
            "secretsync_events_matched",
            "Rotation events that made at least one SecretSync due, by source.",
            ["source"],
            registry=self.registry,
        )
        self.events_discarded = prometheus_client.Counter(
            "secretsync_events_discarded",
            "Rotation events discarded, by source and reason (malformed, foreign, unmatched...).",
            ["source", "reason"],
            registry=self.registry,
        )
        self.change_checks = prometheus_client.Counter(
            "secretsync_change_checks",
            "Cheap version checks between refreshes, by outcome (unchanged, changed, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.rollout_restarts = prometheus_client.Counter(
            "secretsync_rollout_restarts",
            "Workload pod-template restarts, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.active = prometheus_client.Gauge(
            "secretsync_active",
            "1 while this replica acts (peering: the active one; sharding: holds a shard), else 0.",
            registry=self.registry,
        )
        self.shards_held = prometheus_client.Gauge(
            "secretsync_shards_held",
            "Shard Leases this replica holds (sharding; 0 when not sharded).",
            registry=self.registry,
        )
        self.status_retries_pending = prometheus_client.Gauge(
            "secretsync_status_writes_pending",
            "Status writes that failed and wait for their retry.",
            registry=self.registry,
        )
        self.tracked = prometheus_client.Gauge(
            "secretsync_tracked",
            "What the operator keeps in memory, by kind (secretsyncs, stores, sessions, "
            "clients, budgets, schedule): flat when objects come and go.",
            ["kind"],
            registry=self.registry,
        )
        self.circuits_open = prometheus_client.Gauge(
            "secretsync_provider_circuits_open",
            "Identities whose calls to a provider endpoint are paused after throttling or "
            "failures (open or half-open circuits), by provider.",
            ["provider"],
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Expose /metrics on the port, in a background thread."""
        prometheus_client.start_http_server(port, registry=self.registry)
