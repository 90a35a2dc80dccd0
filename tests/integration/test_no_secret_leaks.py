"""No secret value used anywhere in this session reached the operators' log (at debug
level), an Event, a status, an annotation or a metric. Runs after every other test."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness import leaks

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator"), pytest.mark.last]


def test_no_secret_value_reaches_logs_events_statuses_annotations_or_metrics(
    api: Any, operator_log: Path, operator_metrics: str, secret_values: set[bytes]
) -> None:
    assert len(secret_values) >= 10, "too few values were used for the scan to mean anything"
    log = operator_log.read_bytes()
    assert b'"logger": "secretsync.audit"' in log, "the log holds no audit records: wrong file?"
    with urllib.request.urlopen(operator_metrics, timeout=10) as resp:  # noqa: S310 - loopback
        metrics = resp.read()
    assert b"secretsync_provider_calls_total" in metrics
    sources = {"operator log": log, "metrics": metrics, **leaks.cluster_sources(api)}
    assert leaks.find(sources, secret_values) == []
