"""SS002 (secrets in ConfigMaps) and SS004 (Opaque Secrets no controller manages)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from secretsync.models import timestamps
from secretsync.scan import literals
from secretsync.scan.model import HAND_MADE_SECRET, LITERAL_IN_CONFIG_MAP, Finding
from secretsync.scan.workloads import ref_of

# How a manager marks the Secrets it writes: `app.kubernetes.io/managed-by` with one of
# these values (any case), Helm's `owner: helm`, or a label key only a manager sets.
MANAGERS = frozenset(
    (
        *("secretsync", "helm", "terraform", "pulumi", "crossplane", "cert-manager"),
        *("external-secrets", "sealed-secrets", "vault-secrets-operator", "argocd"),
        *("kustomize-controller", "helm-controller", "flux", "kubernetes-replicator"),
    )
)
MANAGER_LABELS = (
    "reconcile.external-secrets.io/managed",
    "kustomize.toolkit.fluxcd.io/name",  # applied by Flux from Git (SOPS-decrypted there)
    "argocd.argoproj.io/instance",
)
MANAGER_ANNOTATIONS = (
    "meta.helm.sh/release-name",
    "cert-manager.io/certificate-name",
    "cert-manager.io/issuer-name",
    "sealedsecrets.bitnami.com/managed",
    "secretsync.io/secretsync",  # a Secret a SecretSync writes whole
    "secretsync.io/merged-by",  # an existing Secret a SecretSync merges into
    "kubernetes.io/service-account.name",
)


def config_map(obj: Mapping[str, Any]) -> Iterator[Finding]:
    """SS002 for one ConfigMap (call inside literals.detectors())."""
    ref = ref_of("ConfigMap", obj)
    for key, text in sorted((obj.get("data") or {}).items()):
        if isinstance(text, str) and (found := literals.in_file(key, text)):
            yield Finding(
                check=LITERAL_IN_CONFIG_MAP.id,
                ref=ref,
                field=f"data[{key}]",
                evidence="detect-secrets: " + ", ".join(found),
            )


def hand_made(obj: Mapping[str, Any], *, now: float | None = None) -> Iterator[Finding]:
    """SS004 for one Secret, listed as metadata only with `type=Opaque`."""
    meta = obj.get("metadata") or {}
    if meta.get("ownerReferences"):
        return
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if managed(labels, annotations):
        return
    if meta.get("name") == "secretsync-state" and labels.get("app.kubernetes.io/name") == (
        "secretsync"
    ):
        return  # the operator's own HMAC key (lease state Secrets have a type of their own)
    created = meta.get("creationTimestamp")
    age = _age_days(created, now) if isinstance(created, str) else None
    evidence = "no owner, no manager label or annotation"
    if age is not None:
        evidence += f"; created {age} days ago"
    yield Finding(
        check=HAND_MADE_SECRET.id, ref=ref_of("Secret", obj), field="metadata", evidence=evidence
    )


def managed(labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
    """Whether a known manager's label or annotation marks the Secret."""
    if str(labels.get("app.kubernetes.io/managed-by", "")).lower() in MANAGERS:
        return True
    if labels.get("owner") == "helm" or any(label in labels for label in MANAGER_LABELS):
        return True
    return any(note in annotations for note in MANAGER_ANNOTATIONS)


def _age_days(stamp: str, now: float | None) -> int | None:
    created = timestamps.epoch(stamp)
    if created is None:
        return None
    return int(((now if now is not None else time.time()) - created) // 86400)
