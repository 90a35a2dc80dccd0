"""ESO ExternalSecret (and the ExternalSecret spec inside a ClusterExternalSecret) to a
SecretSync spec.

This module is the entry point: the store reference and the refresh settings convert
here, the target in targets, what to read (data and dataFrom) in sources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from secretsync.convert import sources, targets
from secretsync.convert.fields import Unconvertible, defaulted, duration, items, obj, text, unknown
from secretsync.convert.report import ObjectReport
from secretsync.convert.stores import StoreFacts
from secretsync.convert.synccontext import SyncContext

# Finds a store's facts by (kind, name) as seen from the ExternalSecret's namespace.
StoreLookup = Callable[[str, str], StoreFacts | None]
OVERLAP = (
    "ESO merges the sources into one Secret (each dataFrom item over the ones before it, "
    "then data over dataFrom); secretsync takes each Secret key from one source only: if "
    "two of these sources yield the same key, the SecretSync does not sync and its status "
    "names the key and both sources"
)


def convert_spec(
    spec: Mapping[str, Any],
    report: ObjectReport,
    stores: StoreLookup,
    *,
    prefix: str = "spec",
    metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any] | None:
    """A SecretSync spec for an ExternalSecret spec, or None (the report says why).
    metadata: the ExternalSecret's labels and annotations that ESO copies onto a Secret
    written without a template."""
    ctx = SyncContext(report=report, prefix=prefix, metadata=metadata or {})
    try:
        return _spec(ctx, spec, stores)
    except Unconvertible:
        return None


def _spec(ctx: SyncContext, spec: Mapping[str, Any], stores: StoreLookup) -> dict[str, Any]:
    unknown(
        ctx.report,
        spec,
        {"secretStoreRef", "target", "refreshInterval", "refreshPolicy", "data", "dataFrom"},
        ctx.prefix,
    )
    out: dict[str, Any] = {"storeRef": _store_ref(ctx, obj(spec.get("secretStoreRef")), stores)}
    interval = _refresh(ctx, spec)
    if interval is not None:
        out["refreshInterval"] = interval
    target = targets.target(ctx, obj(spec.get("target")))
    if target:
        out["target"] = target
    data = sources.data(ctx, items(spec.get("data")))
    if data:
        out["data"] = data
    data_from = sources.data_from(ctx, items(spec.get("dataFrom")))
    if data_from:
        out["dataFrom"] = data_from
    if not data and not data_from:
        raise ctx.fail("data", "nothing left to sync: secretsync needs data or dataFrom")
    if len(data_from) > 1 or (data and data_from):
        # Which keys an extract or a find yields is known only at sync time.
        ctx.report.note(ctx.at("dataFrom"), OVERLAP)
    return out


def _store_ref(ctx: SyncContext, ref: Mapping[str, Any], stores: StoreLookup) -> dict[str, str]:
    """The storeRef, having looked up the store's facts into ctx.store."""
    name = text(ref.get("name"))
    if name is None:
        raise ctx.fail(
            "secretStoreRef.name", "secretsync needs one store per SecretSync (no sourceRef)"
        )
    kind = text(ref.get("kind")) or "SecretStore"
    if kind not in ("SecretStore", "ClusterSecretStore"):
        raise ctx.fail("secretStoreRef.kind", "must be SecretStore or ClusterSecretStore")
    unknown(ctx.report, ref, {"name", "kind"}, ctx.at("secretStoreRef"))
    ctx.store = stores(kind, name)
    if ctx.store is None:
        ctx.report.note(
            ctx.at("secretStoreRef"),
            f"{kind} {name} is not in the input: remote keys and versions are copied "
            "as they are (ESO's provider-specific forms are not rewritten)",
        )
    return {"name": name, "kind": kind}


def _refresh(ctx: SyncContext, spec: Mapping[str, Any]) -> str | None:
    interval = None
    if spec.get("refreshInterval") is not None:
        interval = duration(spec["refreshInterval"])
        if interval is None:
            ctx.report.lose(
                ctx.at("refreshInterval"),
                "not a duration secretsync accepts (such as 30s, 15m, 1h or 0); "
                "the default 1h is used",
            )
    policy = text(spec.get("refreshPolicy"))
    if policy == "OnChange":
        # ESO then syncs when the ExternalSecret changes and never on a timer: "0".
        ctx.report.note(
            ctx.at("refreshPolicy"),
            "OnChange is refreshInterval 0 in secretsync: a sync on each change of the "
            "SecretSync, none on a timer",
        )
        return "0"
    if policy == "CreatedOnce":
        ctx.report.lose(
            ctx.at("refreshPolicy"),
            "CreatedOnce is converted as refreshInterval 0: secretsync syncs again on each "
            "change of the SecretSync, where ESO synced once per ExternalSecret",
        )
        return "0"
    defaulted(ctx.report, spec, "refreshPolicy", {"Periodic"}, ctx.prefix)
    return interval
