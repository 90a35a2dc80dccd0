"""The chart's audit CronJob (`audit.cronJob.enabled`) on the local node: a Job made from
it runs `secretsync audit` from the operator's image, in a hardened Pod, as the audit
ServiceAccount and its ClusterRole, and reports a literal key planted in another
namespace without printing it."""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Iterator

import pytest
import yaml

from e2e.support import Figures
from harness import delivery, releases
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e


@pytest.fixture
def planted(node_env: DevEnv) -> Iterator[tuple[str, str]]:
    """A namespace with a suspended CronJob whose env holds a literal AWS key id (made
    here, never committed)."""
    namespace = f"audit-target-{uuid.uuid4().hex[:6]}"
    key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    container = {
        "name": "app",
        "image": "registry.local/app:1",
        "env": [{"name": "AWS_ACCESS_KEY_ID", "value": key}],
    }
    job = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    node_env.kubectl("create", "namespace", namespace)
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": namespace},
        "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": job}},
    }
    node_env.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(manifest))
    yield namespace, key
    node_env.kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_audit_cronjob_runs_the_audit_in_a_pod_as_its_service_account(
    node_env: DevEnv, planted: tuple[str, str], figures: Figures
) -> None:
    target, key = planted
    suffix = uuid.uuid4().hex[:6]
    namespace, release = f"secretsync-audit-{suffix}", f"audit-{suffix}"
    values = [*releases.image_values(node_env), "audit.cronJob.enabled=true"]
    rendered = delivery.helm(
        node_env.binaries.helm_bin,
        "template", release, str(delivery.CHART), "--namespace", namespace,
        "--show-only", "templates/audit.yaml",
        *[arg for value in values for arg in ("--set", value)],
    )  # fmt: skip
    cron = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "CronJob")
    name = cron["metadata"]["name"]
    node_env.kubectl("create", "namespace", namespace)
    try:
        node_env.kubectl("apply", "-f", "-", input_text=rendered)
        node_env.kubectl("create", "job", "run-1", f"--from=cronjob/{name}", "-n", namespace)
        waited = node_env.kubectl(
            "wait", "--for=condition=complete", "job/run-1", "-n", namespace, "--timeout=180s",
            check=False,
        )  # fmt: skip
        log = node_env.kubectl("logs", "job/run-1", "-n", namespace, check=False).stdout
        assert waited.returncode == 0, f"the audit Job did not complete: {waited.stderr}\n{log}"
        report = json.loads(log)
        findings = [f for f in report["findings"] if f["namespace"] == target]
        assert [(f["check"], f["kind"], f["name"]) for f in findings] == [
            ("SS001", "CronJob", "report")
        ]
        assert "AWS Access Key" in findings[0]["evidence"]
        assert key not in log
        assert key[:6] not in log
        # It listed what the checks need, as its own ServiceAccount: nothing was refused.
        assert not [n for n in report["notes"] if "403" in n["reason"]]
        figures.record(
            "audit Job from the chart's CronJob, objects scanned",
            sum(report["scanned"].values()),
            "",
        )
    finally:
        node_env.kubectl("delete", "-f", "-", input_text=rendered, check=False)
        node_env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
