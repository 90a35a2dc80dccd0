"""ESO ExternalSecret (and the ExternalSecret spec inside a ClusterExternalSecret) to a
SecretSync spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from secretsync.convert import templates
from secretsync.convert.fields import (
    SECRET_KEY,
    defaulted,
    duration,
    items,
    obj,
    strings,
    text,
    unknown,
)
from secretsync.convert.report import ObjectReport
from secretsync.convert.stores import StoreFacts

# Finds a store's facts by (kind, name) as seen from the ExternalSecret's namespace.
StoreLookup = Callable[[str, str], StoreFacts | None]
UNTRANSLATED = "{{ untranslated_go_template }}"  # fails closed: an undefined name at render
FORBIDDEN_TYPES = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")
REF_FIELDS = {"key", "property", "version", "conversionStrategy", "decodingStrategy"}
REF_DEFAULTS = {
    "conversionStrategy": {"Default"},
    "decodingStrategy": {"None"},
    "metadataPolicy": {"None"},
}


class Unconvertible(Exception):  # noqa: N818 - control flow inside this module
    """The ExternalSecret cannot be converted; the report already says why."""


class _SyncConverter:
    def __init__(self, report: ObjectReport, stores: StoreLookup, prefix: str) -> None:
        self.report = report
        self.stores = stores
        self.prefix = prefix  # "spec" or "spec.externalSecretSpec"
        self.store: StoreFacts | None = None

    def at(self, path: str) -> str:
        return f"{self.prefix}.{path}" if path else self.prefix

    def fail(self, path: str, reason: str) -> Unconvertible:
        self.report.drop(self.at(path), reason)
        return Unconvertible()

    def spec(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        unknown(
            self.report,
            spec,
            {"secretStoreRef", "target", "refreshInterval", "refreshPolicy", "data", "dataFrom"},
            self.prefix,
        )
        ref = obj(spec.get("secretStoreRef"))
        name = text(ref.get("name"))
        if name is None:
            raise self.fail(
                "secretStoreRef.name", "secretsync needs one store per SecretSync (no sourceRef)"
            )
        kind = text(ref.get("kind")) or "SecretStore"
        if kind not in ("SecretStore", "ClusterSecretStore"):
            raise self.fail("secretStoreRef.kind", "must be SecretStore or ClusterSecretStore")
        unknown(self.report, ref, {"name", "kind"}, self.at("secretStoreRef"))
        self.store = self.stores(kind, name)
        if self.store is None:
            self.report.note(
                self.at("secretStoreRef"),
                f"{kind} {name} is not in the input: remote keys and versions are copied "
                "as they are (ESO's provider-specific forms are not rewritten)",
            )
        out: dict[str, Any] = {"storeRef": {"name": name, "kind": kind}}
        interval = self.refresh(spec)
        if interval is not None:
            out["refreshInterval"] = interval
        target = self.target(obj(spec.get("target")))
        if target:
            out["target"] = target
        data = self.data(items(spec.get("data")))
        if data:
            out["data"] = data
        data_from = self.data_from(items(spec.get("dataFrom")))
        if data_from:
            out["dataFrom"] = data_from
        if not data and not data_from:
            raise self.fail("data", "nothing left to sync: secretsync needs data or dataFrom")
        return out

    def refresh(self, spec: Mapping[str, Any]) -> str | None:
        interval = None
        if spec.get("refreshInterval") is not None:
            interval = duration(spec["refreshInterval"])
            if interval is None:
                self.report.lose(
                    self.at("refreshInterval"),
                    "not a duration secretsync accepts (such as 30s, 15m, 1h or 0); "
                    "the default 1h is used",
                )
        policy = text(spec.get("refreshPolicy"))
        if policy in ("CreatedOnce", "OnChange"):
            self.report.lose(
                self.at("refreshPolicy"),
                f"{policy} is converted as refreshInterval 0: secretsync then syncs once per "
                "change of the SecretSync"
                + (", and updates a Secret that already exists" if policy == "CreatedOnce" else ""),
            )
            return "0"
        defaulted(self.report, spec, "refreshPolicy", {"Periodic"}, self.prefix)
        return interval

    def target(self, target: Mapping[str, Any]) -> dict[str, Any]:
        p = "target"
        unknown(
            self.report,
            target,
            {"name", "creationPolicy", "deletionPolicy", "immutable", "template"},
            self.at(p),
        )
        out: dict[str, Any] = {}
        if text(target.get("name")):
            out["name"] = str(target["name"])
        creation = text(target.get("creationPolicy")) or "Owner"
        if creation == "None":
            raise self.fail(
                f"{p}.creationPolicy", "None writes no Secret; a SecretSync always writes one"
            )
        if creation not in ("Owner", "Orphan", "Merge"):
            raise self.fail(f"{p}.creationPolicy", "must be Owner, Orphan or Merge")
        if creation != "Owner":
            out["creationPolicy"] = creation
        deletion = text(target.get("deletionPolicy")) or "Retain"
        if deletion == "Merge":
            self.report.lose(
                self.at(f"{p}.deletionPolicy"),
                "Merge is converted as Retain: secretsync keeps the data when the remote "
                "secret is gone unless told Delete",
            )
        elif deletion == "Delete":
            out["deletionPolicy"] = "Delete"
        elif deletion != "Retain":
            self.report.lose(self.at(f"{p}.deletionPolicy"), "unknown; Retain is used")
        if target.get("immutable") is True:
            out["immutable"] = True
        template = obj(target.get("template"))
        if template:
            out.update(self.template(template))
        return out

    def template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        p = "target.template"
        unknown(
            self.report,
            template,
            {"type", "engineVersion", "metadata", "mergePolicy", "data"},
            self.at(p),
        )
        out: dict[str, Any] = {}
        kind = text(template.get("type"))
        if kind in FORBIDDEN_TYPES:
            self.report.lose(self.at(f"{p}.type"), "secretsync does not write this Secret type")
        elif kind:
            out["type"] = kind
        meta = obj(template.get("metadata"))
        unknown(self.report, meta, {"labels", "annotations"}, self.at(f"{p}.metadata"))
        for field in ("labels", "annotations"):
            values = strings(meta.get(field))
            for key in [k for k, v in values.items() if "{{" in v]:
                self.report.lose(
                    self.at(f"{p}.metadata.{field}.{key}"),
                    "a template in metadata is not rendered by secretsync; left out",
                )
                del values[key]
            if values:
                out[field] = values
        engine = text(template.get("engineVersion")) or "v2"
        if text(template.get("mergePolicy")) == "Merge":
            self.report.lose(
                self.at(f"{p}.mergePolicy"),
                "Merge is not converted: with a template, secretsync's Secret holds the "
                "rendered keys only (as ESO's Replace)",
            )
        else:
            defaulted(self.report, template, "mergePolicy", {"Replace"}, self.at(p))
        rendered: dict[str, str] = {}
        for key, source in strings(template.get("data")).items():
            where = self.at(f"{p}.data.{key}")
            if engine != "v2":
                self.report.lose(
                    where,
                    f"engineVersion {engine} templates are not translated; the key fails to "
                    "render until rewritten in Jinja2",
                )
                rendered[key] = UNTRANSLATED
                continue
            result = templates.translate(source)
            for note in result.notes:
                self.report.note(where, note)
            if result.text is None:
                self.report.lose(
                    where,
                    "not translated to Jinja2 ("
                    + "; ".join(result.problems)
                    + "); the key fails to render until rewritten",
                )
                rendered[key] = UNTRANSLATED
            else:
                rendered[key] = result.text
        if rendered:
            out["template"] = {"data": rendered}
        return out

    # --- what to read --------------------------------------------------------------

    def remote(self, ref: Mapping[str, Any], path: str) -> dict[str, Any]:
        unknown(self.report, ref, REF_FIELDS | {"metadataPolicy"}, self.at(path))
        for field, allowed in REF_DEFAULTS.items():
            defaulted(self.report, ref, field, allowed, self.at(path))
        key = text(ref.get("key"))
        if key is None:
            raise Unconvertible()
        out: dict[str, Any] = {"key": self.key(key, path)}
        if text(ref.get("property")):
            out["property"] = str(ref["property"])
        version = text(ref.get("version"))
        if version:
            out["version"] = self.version(version, path)
        return out

    def key(self, key: str, path: str) -> str:
        store = self.store
        if store is None or store.provider != "vault" or store.vault_path is None:
            return key
        # ESO accepts keys that repeat the mount (and /data/ on KV v2); secretsync's
        # keys are below the mount.
        head = store.vault_path + "/"
        if key.startswith(head):
            rest = key[len(head) :]
            if store.vault_version == "v2" and rest.startswith("data/"):
                rest = rest[len("data/") :]
            self.report.note(self.at(f"{path}.key"), "the leading mount path is removed")
            return rest
        return key

    def version(self, version: str, path: str) -> str:
        if version.startswith("uuid/"):
            # ESO's way to name a Secrets Manager version id; secretsync tells ids by shape.
            self.report.note(self.at(f"{path}.version"), "the 'uuid/' prefix is removed")
            return version[len("uuid/") :]
        return version

    def data(self, data: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, raw in enumerate(data):
            item = obj(raw)
            p = f"data[{i}]"
            unknown(self.report, item, {"secretKey", "remoteRef", "sourceRef"}, self.at(p))
            if item.get("sourceRef"):
                self.report.lose(
                    self.at(f"{p}.sourceRef"),
                    "left out: a SecretSync reads from its one store (no sourceRef or generators)",
                )
                continue
            key = text(item.get("secretKey"))
            if key is None or not SECRET_KEY.match(key):
                self.report.lose(self.at(f"{p}.secretKey"), "not a valid Secret key; left out")
                continue
            if key in seen:
                self.report.lose(
                    self.at(f"{p}.secretKey"),
                    "a second item for the same key (ESO keeps the last, secretsync refuses "
                    "both); left out",
                )
                continue
            try:
                remote = self.remote(obj(item.get("remoteRef")), f"{p}.remoteRef")
            except Unconvertible:
                self.report.lose(self.at(f"{p}.remoteRef.key"), "missing; item left out")
                continue
            seen.add(key)
            out.append({"secretKey": key, "remoteRef": remote})
        return out

    def data_from(self, data_from: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, raw in enumerate(data_from):
            item = obj(raw)
            p = f"dataFrom[{i}]"
            unknown(self.report, item, {"extract", "find", "rewrite", "sourceRef"}, self.at(p))
            if item.get("sourceRef"):
                self.report.lose(
                    self.at(f"{p}.sourceRef"),
                    "left out: a SecretSync reads from its one store (no sourceRef or generators)",
                )
                continue
            if item.get("rewrite"):
                self.report.lose(
                    self.at(f"{p}.rewrite"),
                    "ignored: the Secret keys are the remote ones, not rewritten",
                )
            if item.get("extract"):
                try:
                    extract = self.remote(obj(item["extract"]), f"{p}.extract")
                except Unconvertible:
                    self.report.lose(self.at(f"{p}.extract.key"), "missing; item left out")
                    continue
                out.append({"extract": extract})
            elif item.get("find"):
                find = self.find(obj(item["find"]), f"{p}.find")
                if find is not None:
                    out.append({"find": find})
        return out

    def find(self, find: Mapping[str, Any], path: str) -> dict[str, Any] | None:
        unknown(
            self.report,
            find,
            {"path", "name", "tags", "conversionStrategy", "decodingStrategy"},
            self.at(path),
        )
        for field in ("conversionStrategy", "decodingStrategy"):
            defaulted(self.report, find, field, REF_DEFAULTS[field], self.at(path))
        out: dict[str, Any] = {}
        if text(find.get("path")):
            out["path"] = str(find["path"])
        regexp = text(obj(find.get("name")).get("regexp"))
        if regexp:
            out["name"] = {"regexp": regexp}
        tags = strings(find.get("tags"))
        if tags:
            out["tags"] = tags
        if not out:
            self.report.lose(
                self.at(path), "matches every secret in ESO; secretsync needs path, name or tags"
            )
            return None
        self.report.note(
            self.at(path),
            "found secrets become keys with '/' and other invalid characters as '_', as in "
            "ESO, but secretsync first strips leading and trailing '/'",
        )
        return out


def convert_spec(
    spec: Mapping[str, Any], report: ObjectReport, stores: StoreLookup, *, prefix: str = "spec"
) -> dict[str, Any] | None:
    """A SecretSync spec for an ExternalSecret spec, or None (the report says why)."""
    try:
        return _SyncConverter(report, stores, prefix).spec(spec)
    except Unconvertible:
        return None
