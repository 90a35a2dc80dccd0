"""The `secretsync audit` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from secretsync.errors import SecretSyncError
from secretsync.kube.inventory import connect
from secretsync.models import duration
from secretsync.scan import allow, metrics
from secretsync.scan.model import CHECKS, Severity
from secretsync.scan.report import FORMATS, Report
from secretsync.scan.run import Options, audit

EXIT_FOUND = 1  # a finding at or above --fail-on
EXIT_ERROR = 2  # the audit could not run (bad arguments, no cluster), or its push failed
EXIT_PARTIAL = 3  # --strict: some places could not be checked


def add_parser(commands: Any) -> None:
    """Add `audit` to the subcommands."""
    checks = "\n".join(f"  {c.id} {c.name} ({c.severity.label}): {c.summary}" for c in CHECKS)
    parser = commands.add_parser(
        "audit",
        help="scan a cluster for secret anti-patterns (read-only)",
        description="Scan a cluster (KUBECONFIG, else in-cluster) for secret anti-patterns. "
        "Reports objects, fields and evidence, never a value.\n\nchecks:\n" + checks,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--namespace", action="append", metavar="NS", help="audit only this namespace (repeatable)"
    )
    parser.add_argument("--output", "-o", choices=tuple(FORMATS), default="table")
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        choices=[s.label for s in Severity],
        help="exit 1 when a finding has this severity or a higher one (for CI)",
    )
    parser.add_argument("--allow", type=Path, metavar="FILE", help="a reviewed allow-list (YAML)")
    parser.add_argument(
        "--environment-label",
        default="environment",
        metavar="LABEL",
        help="the namespace label that names its environment (SS005; default: environment)",
    )
    parser.add_argument(
        "--rotation-max-age",
        default="90d",
        metavar="DURATION",
        help="a remote secret unchanged for longer is reported (SS006; default: 90d)",
    )
    parser.add_argument(
        "--failing-for",
        default="1h",
        metavar="DURATION",
        help="a SecretSync not Ready for longer is reported (SS008; default: 1h)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when some place could not be checked (a refused listing, a provider "
        "that would not answer), after --fail-on's verdict",
    )
    parser.add_argument(
        "--no-remote",
        action="store_true",
        help="skip SS006, which asks each provider as each store's identity",
    )
    parser.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the counts as secretsync_audit_findings{check,severity} to a Prometheus "
        "Pushgateway",
    )


def main(args: argparse.Namespace) -> int:
    """Run `secretsync audit`; the exit code."""
    try:
        options = Options(
            namespaces=tuple(args.namespace or ()),
            environment_label=args.environment_label,
            rotation_max_age=_age(args.rotation_max_age, "--rotation-max-age"),
            failing_for=_age(args.failing_for, "--failing-for"),
            remote=not args.no_remote,
            allowed=tuple(allow.load(args.allow)) if args.allow else (),
        )
        report = asyncio.run(_audit(options))
    except (SecretSyncError, ValueError, OSError) as exc:
        return _error(f"secretsync audit: {exc}")
    # The report first: a push that fails must not lose it (a CronJob's log keeps it).
    sys.stdout.write(FORMATS[args.output](report))
    sys.stdout.flush()
    if args.pushgateway:
        try:
            metrics.push(report, args.pushgateway)
        except OSError as exc:
            return _error(f"secretsync audit: pushing to {args.pushgateway} failed: {exc}")
    worst = report.worst()
    if args.fail_on and worst is not None and worst >= Severity.parse(args.fail_on):
        return EXIT_FOUND
    if args.strict and report.notes:
        return _error(f"secretsync audit: {len(report.notes)} place(s) not checked", EXIT_PARTIAL)
    return 0


def _error(message: str, code: int = EXIT_ERROR) -> int:
    sys.stderr.write(message + "\n")
    return code


async def _audit(options: Options) -> Report:
    kube = connect()
    try:
        return await audit(kube, options)
    finally:
        await kube.close()


def _age(text: str, option: str) -> float:
    """A Go duration, or whole days ("90d"), which ages are usually counted in."""
    if text.endswith("d") and text[:-1].isdigit():
        return int(text[:-1]) * 86400.0
    return duration.parse(text, field=option)
