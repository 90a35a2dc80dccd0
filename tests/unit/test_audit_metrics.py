"""The audit's metrics: every check has a series (0 included), labels are check ids and
severities only, and a push reaches a Pushgateway's API path. The Pushgateway itself
cannot run here (its module is not served by the Go proxy): the push goes to a local
HTTP server that records the request, as the Pushgateway's documented API receives it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from secretsync.scan import metrics
from secretsync.scan.model import CHECKS, Finding, Note, ObjectRef
from secretsync.scan.report import Report

REPORT = Report(
    findings=[
        Finding(
            check="SS004",
            ref=ObjectRef(kind="Secret", namespace="team-a", name="handmade"),
            field="metadata",
            evidence="no owner",
        )
    ]
    * 2,
    notes=[Note(check="SS006", where="SecretSync team-a/x", reason="denied")],
    allowed=1,
    scanned={},
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_check_has_a_series_and_only_check_and_severity_label_it() -> None:
    got = samples(generate_latest(metrics.registry_of(REPORT)).decode())
    findings = {k: v for k, v in got.items() if k[0] == "secretsync_audit_findings"}
    assert len(findings) == len(CHECKS)
    assert (
        findings[("secretsync_audit_findings", (("check", "SS004"), ("severity", "medium")))] == 2
    )
    assert sum(findings.values()) == 2
    assert got[("secretsync_audit_not_checked", ())] == 1
    assert got[("secretsync_audit_allowed", ())] == 1
    assert got[("secretsync_audit_last_run_timestamp_seconds", ())] > 0


class Recorder(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_replaces_the_jobs_group_on_the_gateway(gateway: str) -> None:
    Recorder.received.clear()
    metrics.push(REPORT, gateway)
    ((method, path, body),) = Recorder.received
    # PUT replaces every metric of the group, so a check fixed since the last run drops.
    assert (method, path) == ("PUT", "/metrics/job/secretsync-audit")
    assert (
        samples(body.decode())[
            ("secretsync_audit_findings", (("check", "SS004"), ("severity", "medium")))
        ]
        == 2
    )


def test_the_dashboards_queries_use_only_metrics_the_audit_pushes() -> None:
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "dashboards" / "secretsync-audit.json"
    dashboard = json.loads(path.read_text())
    pushed = {family.name for family in metrics.registry_of(REPORT).collect()}
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"secretsync_audit_\w+", target["expr"])
    }
    assert queried
    assert queried <= pushed, queried - pushed
