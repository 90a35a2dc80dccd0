"""What an ExternalSecret reads to what a SecretSync reads: data (one remote key per
Secret key), dataFrom's extract and find, and the remote references inside them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import SECRET_KEY, defaulted, obj, strings, text, unknown
from secretsync.convert.synccontext import SyncContext

REF_FIELDS = {"key", "property", "version", "conversionStrategy", "decodingStrategy"}
REF_DEFAULTS = {
    "conversionStrategy": {"Default"},
    "decodingStrategy": {"None"},
    "metadataPolicy": {"None"},
}


def data(ctx: SyncContext, data: list[Any]) -> list[dict[str, Any]]:
    """The SecretSync's data for ESO's spec.data."""
    # ESO writes the items in order, so a later item for a key replaces an earlier one.
    last: dict[str, int] = {}
    for i, raw in enumerate(data):
        key = text(obj(raw).get("secretKey"))
        if key is not None and not obj(raw).get("sourceRef"):
            last[key] = i
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(data):
        item = obj(raw)
        p = f"data[{i}]"
        unknown(ctx.report, item, {"secretKey", "remoteRef", "sourceRef"}, ctx.at(p))
        if _other_source(ctx, item, p):
            continue
        key = text(item.get("secretKey"))
        if key is None or not SECRET_KEY.match(key):
            ctx.report.lose(ctx.at(f"{p}.secretKey"), "not a valid Secret key; left out")
            continue
        if last[key] != i:
            ctx.report.note(
                ctx.at(f"{p}.secretKey"),
                f"left out: data[{last[key]}] sets the same key later, and ESO keeps the "
                "last (secretsync refuses two items for one key)",
            )
            continue
        remote = _remote(ctx, obj(item.get("remoteRef")), f"{p}.remoteRef")
        if remote is not None:
            out.append({"secretKey": key, "remoteRef": remote})
    return out


def data_from(ctx: SyncContext, data_from: list[Any]) -> list[dict[str, Any]]:
    """The SecretSync's dataFrom for ESO's spec.dataFrom."""
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(data_from):
        item = obj(raw)
        p = f"dataFrom[{i}]"
        unknown(ctx.report, item, {"extract", "find", "rewrite", "sourceRef"}, ctx.at(p))
        if _other_source(ctx, item, p):
            continue
        if item.get("rewrite"):
            ctx.report.lose(
                ctx.at(f"{p}.rewrite"),
                "ignored: the Secret keys are the remote ones, not rewritten",
            )
        if item.get("extract"):
            extract = _remote(ctx, obj(item["extract"]), f"{p}.extract")
            if extract is not None:
                out.append({"extract": extract})
        elif item.get("find"):
            find = _find(ctx, obj(item["find"]), f"{p}.find")
            if find is not None:
                out.append({"find": find})
    return out


def _other_source(ctx: SyncContext, item: Mapping[str, Any], path: str) -> bool:
    """Whether the item reads elsewhere than the store (it is then left out)."""
    if not item.get("sourceRef"):
        return False
    ctx.report.lose(
        ctx.at(f"{path}.sourceRef"),
        "left out: a SecretSync reads from its one store (no sourceRef or generators)",
    )
    return True


def _remote(ctx: SyncContext, ref: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """A remoteRef or extract, or None (no key: the item is left out)."""
    unknown(ctx.report, ref, REF_FIELDS | {"metadataPolicy"}, ctx.at(path))
    for field, allowed in REF_DEFAULTS.items():
        defaulted(ctx.report, ref, field, allowed, ctx.at(path))
    key = text(ref.get("key"))
    if key is None:
        ctx.report.lose(ctx.at(f"{path}.key"), "missing; item left out")
        return None
    out: dict[str, Any] = {"key": _key(ctx, key, path)}
    if text(ref.get("property")):
        out["property"] = str(ref["property"])
    version = text(ref.get("version"))
    if version:
        out["version"] = _version(ctx, version, path)
    return out


def _key(ctx: SyncContext, key: str, path: str) -> str:
    store = ctx.store
    if store is None or store.provider != "vault" or store.vault_path is None:
        return key
    # ESO accepts keys that repeat the mount (and /data/ on KV v2); secretsync's
    # keys are below the mount.
    head = store.vault_path + "/"
    if key.startswith(head):
        rest = key[len(head) :]
        if store.vault_version == "v2" and rest.startswith("data/"):
            rest = rest[len("data/") :]
        ctx.report.note(ctx.at(f"{path}.key"), "the leading mount path is removed")
        return rest
    return key


def _version(ctx: SyncContext, version: str, path: str) -> str:
    if version.startswith("uuid/"):
        # ESO's way to name a Secrets Manager version id; secretsync tells ids by shape.
        ctx.report.note(ctx.at(f"{path}.version"), "the 'uuid/' prefix is removed")
        return version[len("uuid/") :]
    return version


def _find(ctx: SyncContext, find: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    unknown(
        ctx.report,
        find,
        {"path", "name", "tags", "conversionStrategy", "decodingStrategy"},
        ctx.at(path),
    )
    for field in ("conversionStrategy", "decodingStrategy"):
        defaulted(ctx.report, find, field, REF_DEFAULTS[field], ctx.at(path))
    out: dict[str, Any] = {}
    if text(find.get("path")):
        out["path"] = str(find["path"])
    regexp = text(obj(find.get("name")).get("regexp"))
    if regexp:
        try:
            re.compile(regexp)
        except re.error:
            ctx.report.lose(
                ctx.at(f"{path}.name.regexp"),
                "not a regular expression secretsync reads (Python's re; ESO's is Go's "
                "RE2); item left out: rewrite it",
            )
            return None
        out["name"] = {"regexp": regexp}
    tags = strings(find.get("tags"))
    if tags:
        out["tags"] = tags
    if not out:
        ctx.report.lose(
            ctx.at(path), "matches every secret in ESO; secretsync needs path, name or tags"
        )
        return None
    _found_keys(ctx, out, path)
    return out


def _found_keys(ctx: SyncContext, find: Mapping[str, Any], path: str) -> None:
    """How the found secrets' names become Secret keys, here and in ESO.

    Both replace each character other than letters, digits, '-', '.' and '_' by '_';
    secretsync first strips leading and trailing '/', and counts ASCII letters and
    digits only, where ESO keeps any Unicode letter or digit.
    """
    store = ctx.store
    edges = (
        "found secrets become keys with '/' and other invalid characters as '_', as in "
        "ESO; secretsync also replaces non-ASCII letters and first strips leading and "
        "trailing '/'"
    )
    leading = (
        "ESO names each key after the secret's full name with '/' as '_' (/team/db "
        "becomes _team_db); secretsync strips the leading '/' first (team_db), so the "
        "Secret's keys differ: update what reads them, or use data or extract"
    )
    if store is None or store.provider not in ("aws", "vault"):
        ctx.report.lose(
            ctx.at(path),
            "how ESO named the found keys depends on the store's provider, and the store "
            f"is not in the input; for AWS Parameter Store, {leading}",
        )
    elif store.provider == "aws" and store.service == "ParameterStore":
        ctx.report.lose(ctx.at(path), f"parameter names begin with '/': {leading}")
    elif store.provider == "aws" and str(find.get("path", "")).startswith("/"):
        ctx.report.lose(ctx.at(f"{path}.path"), f"names under it begin with '/': {leading}")
    else:
        # Vault's names are relative to the mount, Secrets Manager's rarely start with '/'.
        ctx.report.note(ctx.at(path), edges)
