"""ESO SecretStore and ClusterSecretStore to secretsync's: providers aws and vault.

A store that cannot be expressed safely (a provider or an identity secretsync lacks, a
role it cannot know) is not converted at all rather than converted to something that
would read as someone else.

This module is store conversion's entry point; each provider's fields convert in its
own module (aws, vault), and what both share is in storecontext.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from secretsync.convert import aws, vault
from secretsync.convert.aws import AUDIENCE_ANNOTATION, ROLE_ARN_ANNOTATION
from secretsync.convert.fields import Unconvertible, items, obj, strings, text, unknown
from secretsync.convert.read import Document
from secretsync.convert.report import ObjectReport
from secretsync.convert.storecontext import ServiceAccounts, StoreContext

__all__ = [
    "AUDIENCE_ANNOTATION",
    "ROLE_ARN_ANNOTATION",
    "ServiceAccounts",
    "StoreFacts",
    "aws_service_account",
    "convert",
    "facts",
]

# Callers know it by this name: which ServiceAccount to read from a cluster for a store.
aws_service_account = aws.jwt_service_account


@dataclasses.dataclass(frozen=True, slots=True)
class StoreFacts:
    """What converting an ExternalSecret needs to know about its store."""

    provider: str  # "aws" | "vault" | another ESO provider name
    service: str | None = None  # aws: SecretsManager | ParameterStore
    vault_path: str | None = None
    vault_version: str = "v2"


def facts(doc: Document) -> StoreFacts | None:
    """The provider facts of an ESO store document (None: no provider)."""
    provider = obj(obj(doc.body.get("spec")).get("provider"))
    if not provider:
        return None
    name = next(iter(provider))
    if name == "aws":
        return StoreFacts("aws", service=text(obj(provider["aws"]).get("service")))
    if name == "vault":
        body = obj(provider["vault"])
        version = text(body.get("version")) or "v2"
        return StoreFacts("vault", vault_path=vault.mount(body, version), vault_version=version)
    return StoreFacts(name)


def convert(
    doc: Document,
    report: ObjectReport,
    *,
    aws_endpoint: str | None,
    service_accounts: ServiceAccounts | None = None,
) -> dict[str, Any] | None:
    """The secretsync store for an ESO store, or None (the report says why);
    service_accounts (from a cluster) tells the roles ESO's AWS jwt auth exchanged for."""
    ctx = StoreContext(
        doc=doc, report=report, aws_endpoint=aws_endpoint, service_accounts=service_accounts
    )
    try:
        spec = _spec(ctx)
    except Unconvertible:
        return None
    meta: dict[str, Any] = {"name": doc.name}
    if doc.namespace and doc.kind == "SecretStore":
        meta["namespace"] = doc.namespace
    labels = strings(doc.metadata.get("labels"))
    if labels:
        meta["labels"] = labels
    return {"kind": doc.kind, "metadata": meta, "spec": spec}


def _spec(ctx: StoreContext) -> dict[str, Any]:
    spec = obj(ctx.doc.body.get("spec"))
    unknown(ctx.report, spec, {"provider", "conditions", "refreshInterval"}, "spec")
    if spec.get("refreshInterval"):
        # ESO re-validates the store on this interval; no secret's data depends on it.
        ctx.report.note(
            "spec.refreshInterval",
            "not converted: secretsync validates a store when it changes and reports "
            "provider errors on each sync instead",
        )
    provider = obj(spec.get("provider"))
    if len(provider) != 1:
        raise ctx.fail("spec.provider", "needs exactly one provider")
    name, body = next(iter(provider.items()))
    if name == "aws":
        out: dict[str, Any] = {"provider": {"aws": aws.provider(ctx, obj(body))}}
    elif name == "vault":
        out = {"provider": {"vault": vault.provider(ctx, obj(body))}}
    else:
        raise ctx.fail(
            f"spec.provider.{name}",
            "secretsync has no such provider (aws and vault only)",
        )
    conditions = spec.get("conditions")
    if conditions and ctx.cluster:
        out["conditions"] = _conditions(ctx, items(conditions))
    elif conditions:
        ctx.report.lose("spec.conditions", "not converted: only a ClusterSecretStore has them")
    return out


def _conditions(ctx: StoreContext, conditions: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(conditions):
        cond = obj(raw)
        p = f"spec.conditions[{i}]"
        unknown(ctx.report, cond, {"namespaces", "namespaceSelector"}, p)
        new: dict[str, Any] = {}
        names = [str(n) for n in items(cond.get("namespaces")) if n]
        if names:
            new["namespaces"] = names
        selector = obj(cond.get("namespaceSelector"))
        if selector:
            new["namespaceSelector"] = {
                k: v for k, v in selector.items() if k in ("matchLabels", "matchExpressions")
            }
        if new:
            out.append(new)
    if conditions and not out:
        # Dropping every condition would open the store to every namespace.
        raise ctx.fail(
            "spec.conditions",
            "none is expressible in secretsync; without them the store would serve every namespace",
        )
    return out
