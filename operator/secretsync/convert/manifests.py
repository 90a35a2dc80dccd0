"""The conversion of a set of documents: stores first (ExternalSecrets look theirs up),
then ExternalSecrets and ClusterExternalSecrets, in input order."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from secretsync.convert import namespaces as selectors
from secretsync.convert import stores, syncs
from secretsync.convert.fields import items, obj, strings, text
from secretsync.convert.read import Document
from secretsync.convert.report import ObjectReport, Report

GROUP = "external-secrets.io"
VERSIONS = ("v1", "v1beta1")
API_VERSION = "secretsync.io/v1alpha1"
CONVERTED_FROM = "secretsync.io/converted-from"
LOSSY = "secretsync.io/convert-lossy"  # the field paths that did not convert faithfully
STORE_KINDS = ("SecretStore", "ClusterSecretStore")
SYNC_KINDS = ("ExternalSecret", "ClusterExternalSecret")
NOT_ESO = "(not ESO)"
SKIPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """The secretsync manifests, in input order, and the report."""

    manifests: list[dict[str, Any]]
    report: Report


def _report_for(doc: Document, kind: str | None = None) -> ObjectReport:
    return ObjectReport(
        source=doc.source, kind=kind or doc.kind, namespace=doc.namespace, name=doc.name
    )


def _finish(
    doc: Document, report: ObjectReport, body: dict[str, Any], *, namespace: str | None = None
) -> dict[str, Any]:
    meta = body.setdefault("metadata", {})
    if namespace is not None:
        meta["namespace"] = namespace
    annotations = meta.setdefault("annotations", {})
    annotations[CONVERTED_FROM] = f"{GROUP}/{doc.kind}"
    lossy = report.lossy_paths()
    if lossy:
        annotations[LOSSY] = ", ".join(lossy)[:4096]
    return {"apiVersion": API_VERSION, **body}


class _Converter:
    def __init__(
        self,
        *,
        aws_endpoint: str | None,
        namespace_labels: Mapping[str, Mapping[str, str]] | None,
    ) -> None:
        self.aws_endpoint = aws_endpoint
        self.namespace_labels = namespace_labels
        self.store_facts: dict[tuple[str, str | None, str], stores.StoreFacts] = {}
        self.report = Report()

    def lookup(self, namespace: str | None) -> syncs.StoreLookup:
        def find(kind: str, name: str) -> stores.StoreFacts | None:
            ns = namespace if kind == "SecretStore" else None
            return self.store_facts.get((kind, ns, name))

        return find

    def run(self, docs: Sequence[Document]) -> Result:
        for doc in docs:
            if self.is_eso(doc) and doc.kind in STORE_KINDS:
                found = stores.facts(doc)
                if found is not None:
                    ns = doc.namespace if doc.kind == "SecretStore" else None
                    self.store_facts[(doc.kind, ns, doc.name)] = found
        out: list[dict[str, Any]] = []
        for doc in docs:
            out.extend(self.one(doc))
        return Result(out, self.report)

    @staticmethod
    def is_eso(doc: Document) -> bool:
        return doc.group == GROUP

    def one(self, doc: Document) -> list[dict[str, Any]]:
        if not self.is_eso(doc):
            what = f"{doc.api_version or '(no apiVersion)'} {doc.kind or '(no kind)'}"
            obj_report = self.report.add(_report_for(doc, NOT_ESO))
            obj_report.note("", f"passed over: {what} is not an External Secrets Operator object")
            return []
        report = self.report.add(_report_for(doc))
        if doc.version not in VERSIONS:
            report.drop("apiVersion", f"{doc.api_version} is not read: convert from v1 or v1beta1")
            return []
        if not doc.name:
            report.drop("metadata.name", "missing")
            return []
        if doc.kind in STORE_KINDS:
            store = stores.convert(doc, report, aws_endpoint=self.aws_endpoint)
            return [] if store is None else [_finish(doc, report, store)]
        if doc.kind == "ExternalSecret":
            return self.external_secret(doc, report)
        if doc.kind == "ClusterExternalSecret":
            return self.cluster_external_secret(doc, report)
        report.drop("kind", f"{doc.kind} has no secretsync equivalent")
        return []

    def external_secret(self, doc: Document, report: ObjectReport) -> list[dict[str, Any]]:
        spec = syncs.convert_spec(obj(doc.body.get("spec")), report, self.lookup(doc.namespace))
        if spec is None:
            return []
        meta: dict[str, Any] = {"name": doc.name}
        if doc.namespace:
            meta["namespace"] = doc.namespace
        labels = strings(doc.metadata.get("labels"))
        if labels:
            meta["labels"] = labels
        annotations = {
            k: v
            for k, v in strings(doc.metadata.get("annotations")).items()
            if k not in SKIPPED_ANNOTATIONS
        }
        if annotations:
            meta["annotations"] = annotations
        return [_finish(doc, report, {"kind": "SecretSync", "metadata": meta, "spec": spec})]

    def cluster_external_secret(self, doc: Document, report: ObjectReport) -> list[dict[str, Any]]:
        spec = obj(doc.body.get("spec"))
        known = {
            "externalSecretSpec",
            "externalSecretName",
            "externalSecretMetadata",
            "namespaceSelector",
            "namespaceSelectors",
            "namespaces",
            "refreshTime",
        }
        for key in spec:
            if key not in known:
                report.lose(f"spec.{key}", "not converted: secretsync has no equivalent")
        targets = self.namespaces_of(spec, report)
        if not targets:
            report.drop("spec", "no namespace is known to hold a converted SecretSync")
            return []
        out: list[dict[str, Any]] = []
        name = text(spec.get("externalSecretName")) or doc.name
        metadata = obj(spec.get("externalSecretMetadata"))
        for i, ns in enumerate(targets):
            # The findings are the same in every namespace: reported once.
            findings = report if i == 0 else ObjectReport(source="", kind="", namespace=ns, name="")
            sync_spec = syncs.convert_spec(
                obj(spec.get("externalSecretSpec")),
                findings,
                self.lookup(ns),
                prefix="spec.externalSecretSpec",
            )
            if sync_spec is None:
                return []
            meta: dict[str, Any] = {"name": name}
            labels = strings(metadata.get("labels"))
            if labels:
                meta["labels"] = labels
            annotations = strings(metadata.get("annotations"))
            if annotations:
                meta["annotations"] = annotations
            body = {"kind": "SecretSync", "metadata": meta, "spec": sync_spec}
            out.append(_finish(doc, report, body, namespace=ns))
        return out

    def namespaces_of(self, spec: Mapping[str, Any], report: ObjectReport) -> list[str]:
        """Every namespace the ClusterExternalSecret targets, as far as it is known."""
        targets = [str(n) for n in items(spec.get("namespaces")) if n]
        selectors_ = [obj(s) for s in items(spec.get("namespaceSelectors"))]
        if spec.get("namespaceSelector"):
            selectors_.append(obj(spec["namespaceSelector"]))
        if selectors_:
            if self.namespace_labels is None:
                report.lose(
                    "spec.namespaceSelectors",
                    "cannot be resolved from files: run with --from-cluster to create one "
                    "SecretSync per matching namespace",
                )
            else:
                for ns, labels in sorted(self.namespace_labels.items()):
                    try:
                        hit = any(selectors.matches(s, labels) for s in selectors_)
                    except selectors.SelectorError as exc:
                        report.lose("spec.namespaceSelectors", f"not evaluated: {exc}")
                        break
                    if hit:
                        targets.append(ns)
                report.note(
                    "spec.namespaceSelectors",
                    "resolved against the cluster's namespaces now: namespaces created or "
                    "relabelled later get no SecretSync",
                )
        if spec.get("refreshTime"):
            report.note("spec.refreshTime", "ignored: the converted SecretSyncs are a snapshot")
        return list(dict.fromkeys(targets))


def convert(
    docs: Sequence[Document],
    *,
    aws_endpoint: str | None = None,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Result:
    """Convert the documents; namespace_labels (from a cluster) resolves selectors."""
    return _Converter(aws_endpoint=aws_endpoint, namespace_labels=namespace_labels).run(docs)
