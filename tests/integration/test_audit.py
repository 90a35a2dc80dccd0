"""`secretsync audit` on a seeded cluster (harness/auditseed.py): every planted finding of
every check is found, nothing is reported on the look-alikes, no planted value appears in
any output format, and the chart's audit ClusterRole is enough and no more (its can-i
matrix in docs/audit.md, and the same findings when the audit runs as it)."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import auditseed, delivery, kube, scenario
from harness.auditseed import Key, Seeded
from harness.awsproxy import AwsRecordingProxy
from harness.devenv import REPO, DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

AUDIT_DOC = REPO / "docs" / "audit.md"
CHECKS = ("SS001", "SS002", "SS003", "SS004", "SS005", "SS006", "SS007", "SS008")
AUDITOR_NS = "secretsync-audit"


def audit(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The audit's command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "secretsync", "audit", *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def keys(doc: dict[str, Any]) -> set[Key]:
    return {
        (f["check"], f["kind"], f["namespace"] or "", f["name"], f["field"])
        for f in doc["findings"]
    }


@pytest.fixture(scope="module")
def auditor(env: DevEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The chart's audit ServiceAccount and ClusterRole (`audit.rbac.create=true`), applied
    from `helm template`, and a kubeconfig with its TokenRequest token."""
    rendered = delivery.helm(
        env.binaries.helm_bin,
        "template",
        "audit",
        str(delivery.CHART),
        "--namespace",
        AUDITOR_NS,
        "--set",
        "audit.rbac.create=true",
        "--set",
        "audit.rbac.remoteChecks=true",
        "--set",
        "audit.rbac.serviceAccounts={sync}",
        "--show-only",
        "templates/audit.yaml",
    )
    env.kubectl("create", "namespace", AUDITOR_NS, check=False)
    env.kubectl("apply", "-f", "-", input_text=rendered)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    path = tmp_path_factory.mktemp("auditor") / "auditor.kubeconfig"
    yield delivery.service_account_kubeconfig(env, AUDITOR_NS, account, path)
    env.kubectl("delete", "-f", "-", input_text=rendered, check=False)


@pytest.fixture(scope="module")
def seeded(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, secret_values: set[bytes]
) -> Iterator[Seeded]:
    seeded = auditseed.seed(env, api, aws.url)
    secret_values.update(v.encode() for v in seeded.values)
    yield seeded
    for namespace in seeded.namespaces:
        env.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, seeded.cluster_store, check=False)


@pytest.fixture(scope="module")
def outputs(
    env: DevEnv, seeded: Seeded, auditor: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every run the tests look at, made at once: the seed's fresh remote secrets stay
    fresh for auditseed.ROTATION_MAX_AGE seconds only."""
    scope = [f"--namespace={n}" for n in seeded.namespaces]
    common = [
        *scope,
        f"--rotation-max-age={auditseed.ROTATION_MAX_AGE}s",
        f"--failing-for={auditseed.FAILING_FOR}s",
    ]
    allow = tmp_path_factory.mktemp("allow") / "allow.yaml"
    allow.write_text(
        yaml.safe_dump(
            {
                "allow": [
                    {
                        "check": "SS003",
                        "namespace": seeded.prod,
                        "kind": "CronJob",
                        "reason": "the report job moves to a volume in the next release",
                    }
                ]
            }
        )
    )
    started = time.monotonic()
    runs = {
        "json": audit(env.kubeconfig, *common, "--output=json"),
        "table": audit(env.kubeconfig, *common),
        "sarif": audit(env.kubeconfig, *common, "--output=sarif"),
        "auditor": audit(auditor, *common, "--output=json"),
        "fail-high": audit(env.kubeconfig, *common, "--fail-on=high", "--no-remote"),
        "fail-critical": audit(env.kubeconfig, *common, "--fail-on=critical", "--no-remote"),
        "strict": audit(env.kubeconfig, *common, "--strict"),
        "allowed": audit(env.kubeconfig, *common, "--output=json", f"--allow={allow}"),
        "all-namespaces": audit(env.kubeconfig, *common[len(scope) :], "-o", "json", "--no-remote"),
    }
    elapsed = time.monotonic() - started
    assert elapsed < auditseed.ROTATION_MAX_AGE, f"the audits took {elapsed:.0f}s"
    return runs


def measured_table(seeded: Seeded, found: set[Key]) -> str:
    """docs/audit.md's recall table, from this run."""
    ours = {k for k in found if seeded.ours(k)}
    lines = [
        "| check | planted | found | recall | look-alikes | false positives |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for check in CHECKS:
        planted = {k for k in seeded.planted if k[0] == check}
        hits = {k for k in ours if k[0] == check}
        recall = len(planted & hits) / len(planted) if planted else 1.0
        lines.append(
            f"| {check} | {len(planted)} | {len(planted & hits)} | {recall:.0%} | "
            f"{seeded.look_alikes.get(check, 0)} | {len(hits - planted)} |"
        )
    return "\n".join(lines)


def documented_table() -> str:
    match = re.search(r"<!-- recall -->\n(.*?)\n<!-- /recall -->", AUDIT_DOC.read_text(), re.S)
    assert match, f"no recall table in {AUDIT_DOC}"
    return match.group(1).strip()


def test_every_planted_finding_is_found_and_no_look_alike_is(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    run = outputs["json"]
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    found = {k for k in keys(doc) if seeded.ours(k)}
    missed = sorted(seeded.planted - found)
    false = sorted(found - seeded.planted)
    assert not missed, "planted findings not found:\n" + "\n".join(map(str, missed))
    assert not false, "findings on look-alikes:\n" + "\n".join(map(str, false))
    # Every check ran everywhere; only the failing SecretSync's missing key could not be
    # described.
    assert [n["where"] for n in doc["notes"]] == [
        f"SecretSync {seeded.prod}/broken spec.data[0].remoteRef.key ({seeded.suffix}/missing)"
    ]
    assert measured_table(seeded, found) == documented_table(), (
        "docs/audit.md's recall table differs from this run:\n" + measured_table(seeded, found)
    )


def test_the_table_says_what_to_fix_and_what_was_not_checked(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    text = outputs["table"].stdout
    assert outputs["table"].returncode == 0, outputs["table"].stderr
    assert text.splitlines()[0].split() == ["SEVERITY", "CHECK", "OBJECT", "FIELD", "EVIDENCE"]
    assert f"high      SS001  Deployment {seeded.prod}/api" in text
    assert "How to fix:" in text
    assert "SS004 hand-made-secret:" in text
    # The failing SecretSync's remote key does not exist: its age could not be asked.
    assert "Not checked:" in text
    assert f"SecretSync {seeded.prod}/broken" in text


def test_no_output_holds_a_planted_value_or_a_prefix_of_one(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    for name, run in outputs.items():
        emitted = run.stdout + run.stderr
        for value in seeded.values:
            forms = {value, value[:6], base64.b64encode(value.encode()).decode()}
            leaked = [f for f in forms if f in emitted]
            assert not leaked, f"the {name} output holds a planted value (or its prefix)"


def test_sarif_is_sarif_2_1_0_with_a_rule_per_check(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    sarif = json.loads(outputs["sarif"].stdout)
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CHECKS)
    assert all(r["help"]["text"] and r["shortDescription"]["text"] for r in rules)
    assert all(r["defaultConfiguration"]["level"] in ("note", "warning", "error") for r in rules)
    results = [
        r
        for r in run["results"]
        if any(ns in r["partialFingerprints"]["secretsyncFinding/v1"] for ns in seeded.namespaces)
    ]
    assert len(results) == len([k for k in seeded.planted if k[1] != "ClusterSecretStore"])
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        assert location["logicalLocations"][0]["kind"] == "resource"


def test_fail_on_and_strict_set_the_exit_code_and_the_allow_list_takes_out_what_it_names(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    assert outputs["fail-high"].returncode == 1, outputs["fail-high"].stderr
    assert outputs["fail-critical"].returncode == 0, outputs["fail-critical"].stderr
    # The failing SecretSync's key cannot be described: --strict says the audit is partial.
    assert outputs["strict"].returncode == 3, outputs["strict"].stderr
    assert "1 place(s) not checked" in outputs["strict"].stderr
    allowed = json.loads(outputs["allowed"].stdout)
    found = keys(allowed)
    taken = {k for k in seeded.planted if k[0] == "SS003" and k[1] == "CronJob"}
    assert taken
    assert not taken & found
    assert seeded.planted - taken <= found
    assert allowed["allowed"] == len(taken)


def test_all_namespaces_finds_the_same_in_the_seeded_ones(
    seeded: Seeded, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    every = {k for k in keys(json.loads(outputs["all-namespaces"].stdout)) if seeded.ours(k)}
    assert every == {k for k in seeded.planted if k[0] != "SS006"}


def test_the_audit_clusterrole_is_enough_and_only_reads(
    env: DevEnv, seeded: Seeded, auditor: Path, outputs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    # Enough: as the chart's ServiceAccount, the same findings and nothing left unchecked.
    as_auditor = json.loads(outputs["auditor"].stdout)
    as_admin = json.loads(outputs["json"].stdout)
    assert keys(as_auditor) == keys(as_admin)
    assert as_auditor["notes"] == as_admin["notes"]
    # And no more: docs/audit.md's can-i matrix.
    wrong = []
    for args, expected in can_i_matrix():
        args = [a.replace("team-a", seeded.clean) for a in args]
        proc = kube.kubectl(env.binaries.kubectl, auditor, "auth", "can-i", *args, check=False)
        got = proc.stdout.strip() == "yes"
        if got != expected:
            wrong.append(f"can-i {' '.join(args)}: {got}, docs/audit.md says {expected}")
    assert not wrong, "\n".join(wrong)


def can_i_matrix() -> list[tuple[list[str], bool]]:
    match = re.search(r"<!-- can-i: audit -->\n(.*?)<!-- /can-i -->", AUDIT_DOC.read_text(), re.S)
    assert match, f"no can-i table in {AUDIT_DOC}"
    rows = []
    for line in match.group(1).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((shlex.split(cells[1].strip("`")), cells[2] == "yes"))
    assert len(rows) > 15
    return rows
