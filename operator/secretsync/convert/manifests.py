"""The conversion of a set of documents: stores first (ExternalSecrets look theirs up),
then ExternalSecrets and ClusterExternalSecrets, in input order."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from secretsync.convert import stores, syncs
from secretsync.convert.fields import items, obj, strings, text
from secretsync.convert.read import GROUP, VERSIONS, Document
from secretsync.convert.report import NOT_ESO, Finding, ObjectReport, Report
from secretsync.engine import selectors
from secretsync.engine.writer import ADOPT_ANNOTATION, ADOPT_ESO

API_VERSION = "secretsync.io/v1alpha1"
CONVERTED_FROM = "secretsync.io/converted-from"
LOSSY = "secretsync.io/convert-lossy"  # the field paths that did not convert faithfully
STORE_KINDS = ("SecretStore", "ClusterSecretStore")
SYNC_KINDS = ("ExternalSecret", "ClusterExternalSecret")
SKIPPED_PREFIXES = ("kubectl.kubernetes.io/",)  # kubectl's bookkeeping, not the user's
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """The secretsync manifests, in input order, and the report."""

    manifests: list[dict[str, Any]]
    report: Report


def _annotations(value: Any) -> dict[str, str]:
    """The annotations worth copying: neither kubectl's nor the ones convert writes."""
    return {
        k: v
        for k, v in strings(value).items()
        if not k.startswith(SKIPPED_PREFIXES) and k not in (CONVERTED_FROM, LOSSY, ADOPT_ANNOTATION)
    }


def _copied_metadata(meta: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The labels and annotations ESO copies from an ExternalSecret onto its Secret."""
    return {
        "labels": strings(meta.get("labels")),
        "annotations": _annotations(meta.get("annotations")),
    }


def _selector(raw: Any) -> dict[str, Any]:
    """A label selector as engine.selectors reads it (strings only), or SelectorError."""
    selector = obj(raw)
    expressions = []
    for expr in (obj(e) for e in items(selector.get("matchExpressions"))):
        key, op = text(expr.get("key")), text(expr.get("operator"))
        if key is None or op not in SELECTOR_OPERATORS:
            raise SelectorError(f"a matchExpression with operator {op!r} or no key")
        values = [str(v) for v in items(expr.get("values"))]
        expressions.append({"key": key, "operator": op, "values": values})
    return {"matchLabels": strings(selector.get("matchLabels")), "matchExpressions": expressions}


class SelectorError(ValueError):
    """A namespace selector this converter cannot evaluate."""


def _generated_by(doc: Document) -> str | None:
    """The ClusterExternalSecret that controls this ExternalSecret, if one does."""
    for ref in (obj(r) for r in items(doc.metadata.get("ownerReferences"))):
        api_version = str(ref.get("apiVersion") or "")
        if (
            ref.get("controller") is True
            and ref.get("kind") == "ClusterExternalSecret"
            and api_version.rpartition("/")[0] == GROUP
        ):
            return text(ref.get("name"))
    return None


def _merge_findings(
    report: ObjectReport, per_namespace: Sequence[tuple[str, ObjectReport]]
) -> None:
    """Each namespace's findings, once: as they are when every namespace has them, else
    prefixed with the namespaces that do."""
    seen: dict[Finding, list[str]] = {}
    for ns, findings in per_namespace:
        for finding in findings.findings:
            namespaces = seen.setdefault(finding, [])
            if ns not in namespaces:
                namespaces.append(ns)
    for finding, namespaces in seen.items():
        if len(namespaces) == len(per_namespace):
            report.findings.append(finding)
            continue
        for ns in namespaces:
            reason = f"in namespace {ns}: {finding.reason}"
            report.findings.append(Finding(finding.path, finding.severity, reason))


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
    if doc.kind in SYNC_KINDS:
        # The Secret ESO wrote is taken over in place, never deleted and recreated
        # (engine/writer.py): workloads keep it through the move.
        annotations[ADOPT_ANNOTATION] = ADOPT_ESO
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
        service_accounts: stores.ServiceAccounts | None,
    ) -> None:
        self.aws_endpoint = aws_endpoint
        self.namespace_labels = namespace_labels
        self.service_accounts = service_accounts
        self.cluster_external_secrets: set[str] = set()
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
            if self.is_eso(doc) and doc.kind == "ClusterExternalSecret" and doc.name:
                self.cluster_external_secrets.add(doc.name)
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
            store = stores.convert(
                doc,
                report,
                aws_endpoint=self.aws_endpoint,
                service_accounts=self.service_accounts,
            )
            return [] if store is None else [_finish(doc, report, store)]
        if doc.kind == "ExternalSecret":
            return self.external_secret(doc, report)
        if doc.kind == "ClusterExternalSecret":
            return self.cluster_external_secret(doc, report)
        report.drop("kind", f"{doc.kind} has no secretsync equivalent")
        return []

    def external_secret(self, doc: Document, report: ObjectReport) -> list[dict[str, Any]]:
        owner = _generated_by(doc)
        if owner is not None and owner in self.cluster_external_secrets:
            report.note(
                "metadata.ownerReferences",
                f"passed over: generated by ClusterExternalSecret {owner}, which is "
                "converted itself",
            )
            return []
        copied = _copied_metadata(doc.metadata)
        spec = syncs.convert_spec(
            obj(doc.body.get("spec")), report, self.lookup(doc.namespace), metadata=copied
        )
        if spec is None:
            return []
        meta: dict[str, Any] = {"name": doc.name}
        if doc.namespace:
            meta["namespace"] = doc.namespace
        labels, annotations = copied["labels"], copied["annotations"]
        if labels:
            meta["labels"] = labels
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
        name = text(spec.get("externalSecretName")) or doc.name
        metadata = obj(spec.get("externalSecretMetadata"))
        copied = _copied_metadata(metadata)
        converted: list[tuple[str, ObjectReport, dict[str, Any]]] = []
        per_namespace: list[tuple[str, ObjectReport]] = []
        for ns in targets:
            # The findings may differ by namespace (a SecretStore is looked up in each).
            findings = ObjectReport(source=doc.source, kind=doc.kind, namespace=ns, name=name)
            per_namespace.append((ns, findings))
            sync_spec = syncs.convert_spec(
                obj(spec.get("externalSecretSpec")),
                findings,
                self.lookup(ns),
                prefix="spec.externalSecretSpec",
                metadata=copied,
            )
            if sync_spec is not None:
                converted.append((ns, findings, sync_spec))
        _merge_findings(report, per_namespace)
        if not converted:
            report.converted = False
            return []
        out: list[dict[str, Any]] = []
        for ns, findings, sync_spec in converted:
            meta: dict[str, Any] = {"name": name}
            if copied["labels"]:
                meta["labels"] = copied["labels"]
            if copied["annotations"]:
                meta["annotations"] = copied["annotations"]
            body = {"kind": "SecretSync", "metadata": meta, "spec": sync_spec}
            out.append(_finish(doc, findings, body, namespace=ns))
        return out

    def namespaces_of(self, spec: Mapping[str, Any], report: ObjectReport) -> list[str]:
        """Every namespace the ClusterExternalSecret targets, as far as it is known."""
        targets = [str(n) for n in items(spec.get("namespaces")) if n]
        raw = list(items(spec.get("namespaceSelectors")))
        if spec.get("namespaceSelector"):
            raw.append(spec["namespaceSelector"])
        if raw:
            if self.namespace_labels is None:
                report.lose(
                    "spec.namespaceSelectors",
                    "cannot be resolved from files: run with --from-cluster to create one "
                    "SecretSync per matching namespace",
                )
            else:
                try:
                    parsed = [_selector(s) for s in raw]
                except SelectorError as exc:
                    report.lose("spec.namespaceSelectors", f"not evaluated: {exc}")
                    parsed = []
                for ns, labels in sorted(self.namespace_labels.items()):
                    if any(selectors.matches(s, labels) for s in parsed):
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
    service_accounts: stores.ServiceAccounts | None = None,
) -> Result:
    """Convert the documents. From a cluster, namespace_labels resolves selectors and
    service_accounts the roles ESO's AWS jwt auth exchanged tokens for."""
    return _Converter(
        aws_endpoint=aws_endpoint,
        namespace_labels=namespace_labels,
        service_accounts=service_accounts,
    ).run(docs)
