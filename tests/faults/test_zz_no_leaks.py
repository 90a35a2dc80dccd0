"""No secret value used by the fault suite reached what the operators emitted under the
faults: their debug-level logs (every operator of the suite, replicas included), the
Events, statuses and managed Secrets' metadata of the suite's cluster, and /metrics.
Runs after the suite's other tests."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness import leaks
from harness import operator as op
from harness.devenv import DevEnv
from harness.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds"), pytest.mark.last]


def test_no_secret_value_reaches_logs_events_statuses_annotations_or_metrics_under_faults(
    faults_env: DevEnv, faults_api: Any, faults_log: Path, faults_values: set[bytes]
) -> None:
    assert len(faults_values) >= 10, "too few values were used for the scan to mean anything"
    port = free_port()
    # One more operator over everything the suite left, to read its metrics.
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        op.running(faults_env, faults_log, metrics_port=port),
        urllib.request.urlopen(url, timeout=10) as resp,
    ):
        metrics = resp.read()
    logs = b"".join(p.read_bytes() for p in sorted(faults_env.run_dir.glob("*.log")))
    assert b'"secretsync.audit"' in logs, "the logs hold no audit records: wrong files?"
    sources = {"operator logs": logs, "metrics": metrics, **leaks.cluster_sources(faults_api)}
    assert leaks.find(sources, faults_values) == []
