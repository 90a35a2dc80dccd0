"""The `secretsync convert` command line.

Exit codes: 0 converted without loss (or with --allow-lossy); 1 something was not
converted faithfully (the report says what; nothing is written without --allow-lossy);
2 the input could not be read, the cluster not listed, or the output not written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from secretsync.convert import cluster, manifests, read
from secretsync.errors import ConfigError, KubeError
from secretsync.kube.inventory import connect

OK, LOSSY, UNREADABLE = 0, 1, 2


def add_parser(commands: Any) -> None:
    """Add `convert` to the subcommands."""
    parser = commands.add_parser(
        "convert",
        help="convert External Secrets Operator manifests",
        description="Convert External Secrets Operator manifests (ExternalSecret, SecretStore, "
        "ClusterSecretStore, ClusterExternalSecret; external-secrets.io/v1 and v1beta1) into "
        "secretsync manifests. What cannot be converted faithfully is reported on stderr.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (*.yaml, *.yml, *.json, recursively); - for stdin",
    )
    parser.add_argument(
        "--from-cluster",
        action="store_true",
        help="read the ESO objects of the cluster (in-cluster, else KUBECONFIG)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="with --from-cluster: only this namespace's objects (repeatable)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--report", metavar="FILE.json", help="also write the report as JSON")
    parser.add_argument(
        "--allow-lossy",
        action="store_true",
        help="write the output and exit 0 even when something was not converted faithfully",
    )
    parser.add_argument(
        "--aws-endpoint",
        metavar="URL",
        help="set spec.provider.aws.endpoint of converted AWS stores (ESO takes it from its "
        "controller's environment)",
    )


def _fail(message: str) -> int:
    sys.stderr.write(f"secretsync convert: {message}\n")
    return UNREADABLE


def _write(path: str, text: str) -> bool:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})")
        return False
    return True


def main(args: argparse.Namespace) -> int:
    """Run `secretsync convert`; the exit code."""
    if bool(args.paths) == bool(args.from_cluster):
        return _fail("give PATH arguments (- for stdin) or --from-cluster, not both or neither")
    if args.namespace and not args.from_cluster:
        return _fail("--namespace applies to --from-cluster only")
    if args.aws_endpoint and not args.aws_endpoint.startswith(("http://", "https://")):
        return _fail("--aws-endpoint must be an http(s) URL")
    labels = accounts = None
    try:
        if args.from_cluster:
            found = asyncio.run(_from_cluster(args.namespace))
            docs, labels, accounts = found.documents, found.namespace_labels, found.service_accounts
        else:
            docs = read.load(args.paths, stdin=sys.stdin)
    except (ConfigError, KubeError) as exc:
        return _fail(str(exc))
    result = manifests.convert(
        docs, aws_endpoint=args.aws_endpoint, namespace_labels=labels, service_accounts=accounts
    )
    out = result.manifests
    if args.from_cluster and args.namespace:
        out = [m for m in out if m["metadata"].get("namespace") in (None, *args.namespace)]
    report = result.report
    sys.stderr.write(report.text())
    if args.report and not _write(args.report, report.dumps()):
        return UNREADABLE
    if report.lossy and not args.allow_lossy:
        sys.stderr.write(
            "secretsync convert: nothing written: some fields did not convert faithfully "
            "(above); fix them, or pass --allow-lossy to write the rest\n"
        )
        return LOSSY
    text = yaml.safe_dump_all(out, sort_keys=False, allow_unicode=True) if out else ""
    if args.output:
        if not _write(args.output, text):
            return UNREADABLE
    else:
        sys.stdout.write(text)
    return OK


async def _from_cluster(namespaces: list[str]) -> cluster.ClusterInput:
    kube = connect()
    try:
        return await cluster.read(kube, namespaces=namespaces)
    finally:
        await kube.close()


__all__ = ["add_parser", "main"]
