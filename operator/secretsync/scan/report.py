"""The audit's report as a table, JSON or SARIF 2.1.0. Each finding names an object, a
field and evidence; the checks say what to do about it."""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from secretsync import __version__
from secretsync.scan.model import BY_ID, CHECKS, Finding, Note, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/secretsync/secretsync/blob/main/docs/audit.md"
# SARIF levels, and GitHub code scanning's numeric security-severity for each.
SARIF_LEVELS = {
    Severity.LOW: ("note", "3.0"),
    Severity.MEDIUM: ("warning", "5.5"),
    Severity.HIGH: ("error", "8.0"),
    Severity.CRITICAL: ("error", "9.5"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    findings: list[Finding]
    notes: list[Note]
    allowed: int  # findings the allow-list covered
    scanned: Mapping[str, int]  # objects read, by kind

    def severity(self, finding: Finding) -> Severity:
        return BY_ID[finding.check].severity

    def counts(self) -> dict[tuple[str, str], int]:
        """Findings by (check id, severity label): the audit's metrics."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for finding in self.findings:
            counts[(finding.check, self.severity(finding).label)] += 1
        return dict(counts)

    def worst(self) -> Severity | None:
        return max((self.severity(f) for f in self.findings), default=None)


def table(report: Report) -> str:
    """A table for people, then the fix of each check found and what was not checked."""
    rows = [("SEVERITY", "CHECK", "OBJECT", "FIELD", "EVIDENCE")]
    ordered = sorted(report.findings, key=lambda f: (-report.severity(f), f.check, f.ref))
    rows += [(report.severity(f).label, f.check, str(f.ref), f.field, f.evidence) for f in ordered]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    ]
    by_severity = collections.Counter(report.severity(f).label for f in report.findings)
    tally = ", ".join(f"{s.label} {by_severity[s.label]}" for s in reversed(Severity))
    scanned = ", ".join(f"{n} {kind}" for kind, n in report.scanned.items())
    lines += ["", f"{len(report.findings)} findings ({tally}); {report.allowed} allowed"]
    lines.append(f"scanned: {scanned}")
    found = sorted({f.check for f in report.findings})
    if found:
        lines += ["", "How to fix:"]
        lines += [f"  {c} {BY_ID[c].name}: {BY_ID[c].fix}" for c in found]
    if report.notes:
        lines += ["", "Not checked:"]
        lines += [f"  {n.check} {n.where}: {n.reason}" for n in report.notes]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_json(report: Report) -> str:
    doc = {
        "tool": {"name": "secretsync audit", "version": __version__},
        "checks": [
            {
                "id": c.id,
                "name": c.name,
                "severity": c.severity.label,
                "summary": c.summary,
                "fix": c.fix,
            }
            for c in CHECKS
        ],
        "findings": [
            {
                "check": f.check,
                "severity": report.severity(f).label,
                "kind": f.ref.kind,
                "namespace": f.ref.namespace,
                "name": f.ref.name,
                "field": f.field,
                "evidence": f.evidence,
            }
            for f in sorted(report.findings)
        ],
        "notes": [dataclasses.asdict(n) for n in sorted(report.notes)],
        "allowed": report.allowed,
        "scanned": dict(report.scanned),
    }
    return json.dumps(doc, indent=2) + "\n"


def to_sarif(report: Report) -> str:
    """SARIF 2.1.0: one rule per check, one result per finding, located logically (a
    Kubernetes object has no file and line)."""
    rules = [
        {
            "id": c.id,
            "name": c.name,
            "shortDescription": {"text": c.summary},
            "help": {"text": c.fix},
            "defaultConfiguration": {"level": SARIF_LEVELS[c.severity][0]},
            "properties": {
                "security-severity": SARIF_LEVELS[c.severity][1],
                "tags": ["security", "secrets"],
            },
        }
        for c in CHECKS
    ]
    index = {c.id: i for i, c in enumerate(CHECKS)}
    results = [_sarif_result(report, f, index[f.check]) for f in sorted(report.findings)]
    notifications = [
        {"level": "warning", "message": {"text": f"{n.check} not checked at {n.where}: {n.reason}"}}
        for n in sorted(report.notes)
    ]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "secretsync-audit",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "toolExecutionNotifications": notifications}
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _sarif_result(report: Report, finding: Finding, rule_index: int) -> dict[str, Any]:
    ref = finding.ref
    name = f"{ref.namespace}/{ref.kind}/{ref.name}" if ref.namespace else f"{ref.kind}/{ref.name}"
    return {
        "ruleId": finding.check,
        "ruleIndex": rule_index,
        "level": SARIF_LEVELS[report.severity(finding)][0],
        "message": {"text": f"{ref} {finding.field}: {finding.evidence}"},
        "locations": [
            {
                "logicalLocations": [
                    {"fullyQualifiedName": f"{name}#{finding.field}", "kind": "resource"}
                ]
            }
        ],
        # Stable across runs (the object and field, no value), so code scanning can
        # follow one finding from run to run.
        "partialFingerprints": {"secretsyncFinding/v1": f"{finding.check}:{name}#{finding.field}"},
    }


FORMATS = {"table": table, "json": to_json, "sarif": to_sarif}
