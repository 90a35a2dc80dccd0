"""The audit's counts as Prometheus metrics, pushed to a Pushgateway: the audit runs as a
CronJob, which ends before any scrape, so it pushes (the Pushgateway's one good use).
Labels are check ids and severities only, never an object or a value."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from secretsync.scan.model import CHECKS
from secretsync.scan.report import Report

JOB = "secretsync-audit"


def registry_of(report: Report) -> CollectorRegistry:
    """A registry holding the report's counts; every check has a series, zero included,
    so that a fixed finding shows as a drop to 0 rather than a vanished series."""
    registry = CollectorRegistry()
    findings = Gauge(
        "secretsync_audit_findings",
        "Findings of the last `secretsync audit`, by check and severity",
        ["check", "severity"],
        registry=registry,
    )
    counts = report.counts()
    for check in CHECKS:
        findings.labels(check.id, check.severity.label).set(
            counts.get((check.id, check.severity.label), 0)
        )
    Gauge(
        "secretsync_audit_not_checked",
        "Places the last audit could not check (forbidden, provider unreachable)",
        registry=registry,
    ).set(len(report.notes))
    Gauge(
        "secretsync_audit_allowed",
        "Findings the allow-list accepted in the last audit",
        registry=registry,
    ).set(report.allowed)
    Gauge(
        "secretsync_audit_last_run_timestamp_seconds",
        "When the last audit finished",
        registry=registry,
    ).set(time.time())
    return registry


def push(report: Report, gateway: str) -> None:
    """Replace this job's group on the Pushgateway with the report's counts."""
    push_to_gateway(gateway, job=JOB, registry=registry_of(report), timeout=30)
