"""An ExternalSecret's target (the Secret ESO writes, and its template) to a
SecretSync's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretsync.convert import templates
from secretsync.convert.fields import defaulted, obj, strings, text, unknown
from secretsync.convert.synccontext import SyncContext

UNTRANSLATED = "{{ untranslated_go_template }}"  # fails closed: an undefined name at render
FORBIDDEN_TYPES = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")


def target(ctx: SyncContext, target: Mapping[str, Any]) -> dict[str, Any]:
    """The SecretSync's target fields for ESO's spec.target."""
    p = "target"
    unknown(
        ctx.report,
        target,
        {"name", "creationPolicy", "deletionPolicy", "immutable", "template"},
        ctx.at(p),
    )
    out: dict[str, Any] = {}
    if text(target.get("name")):
        out["name"] = str(target["name"])
    creation = text(target.get("creationPolicy")) or "Owner"
    if creation == "None":
        raise ctx.fail(
            f"{p}.creationPolicy", "None writes no Secret; a SecretSync always writes one"
        )
    if creation not in ("Owner", "Orphan", "Merge"):
        raise ctx.fail(f"{p}.creationPolicy", "must be Owner, Orphan or Merge")
    if creation != "Owner":
        out["creationPolicy"] = creation
    deletion = text(target.get("deletionPolicy")) or "Retain"
    if deletion == "Merge":
        ctx.report.lose(
            ctx.at(f"{p}.deletionPolicy"),
            "Merge is converted as Retain: secretsync keeps the data when the remote "
            "secret is gone unless told Delete",
        )
    elif deletion == "Delete":
        out["deletionPolicy"] = "Delete"
    elif deletion != "Retain":
        ctx.report.lose(ctx.at(f"{p}.deletionPolicy"), "unknown; Retain is used")
    if target.get("immutable") is True:
        out["immutable"] = True
    template = obj(target.get("template"))
    if template:
        out.update(_template(ctx, template))
    elif target.get("template") is None:
        # Without a template, ESO gives the Secret the ExternalSecret's own labels and
        # annotations (with one, the template's metadata instead).
        for field in ("labels", "annotations"):
            if ctx.metadata.get(field):
                out[field] = dict(ctx.metadata[field])
    return out


def _template(ctx: SyncContext, template: Mapping[str, Any]) -> dict[str, Any]:
    p = "target.template"
    unknown(
        ctx.report,
        template,
        {"type", "engineVersion", "metadata", "mergePolicy", "data"},
        ctx.at(p),
    )
    out: dict[str, Any] = {}
    kind = text(template.get("type"))
    if kind in FORBIDDEN_TYPES:
        ctx.report.lose(ctx.at(f"{p}.type"), "secretsync does not write this Secret type")
    elif kind:
        out["type"] = kind
    meta = obj(template.get("metadata"))
    unknown(ctx.report, meta, {"labels", "annotations"}, ctx.at(f"{p}.metadata"))
    for field in ("labels", "annotations"):
        values = strings(meta.get(field))
        for key in [k for k, v in values.items() if "{{" in v]:
            ctx.report.lose(
                ctx.at(f"{p}.metadata.{field}.{key}"),
                "a template in metadata is not rendered by secretsync; left out",
            )
            del values[key]
        if values:
            out[field] = values
    engine = text(template.get("engineVersion")) or "v2"
    if text(template.get("mergePolicy")) == "Merge":
        ctx.report.lose(
            ctx.at(f"{p}.mergePolicy"),
            "Merge is not converted: with a template, secretsync's Secret holds the "
            "rendered keys only (as ESO's Replace)",
        )
    else:
        defaulted(ctx.report, template, "mergePolicy", {"Replace"}, ctx.at(p))
    rendered = {
        key: _translate(ctx, source, engine, ctx.at(f"{p}.data.{key}"))
        for key, source in strings(template.get("data")).items()
    }
    if rendered:
        out["template"] = {"data": rendered}
    return out


def _translate(ctx: SyncContext, source: str, engine: str, where: str) -> str:
    """One template key in Jinja2, or UNTRANSLATED (the report says why)."""
    if engine != "v2":
        ctx.report.lose(
            where,
            f"engineVersion {engine} templates are not translated; the key fails to "
            "render until rewritten in Jinja2",
        )
        return UNTRANSLATED
    result = templates.translate(source)
    for note in result.notes:
        ctx.report.note(where, note)
    if result.text is None:
        ctx.report.lose(
            where,
            "not translated to Jinja2 ("
            + "; ".join(result.problems)
            + "); the key fails to render until rewritten",
        )
        return UNTRANSLATED
    return result.text
