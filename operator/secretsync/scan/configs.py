"""SS002 (secrets in ConfigMaps) and SS004 (Opaque Secrets no controller manages)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from secretsync.scan import literals
from secretsync.scan.model import HAND_MADE_SECRET, LITERAL_IN_CONFIG_MAP, Finding
from secretsync.scan.workloads import ref_of

# Labels and annotations by which a manager marks the Secrets it writes. Any
# `app.kubernetes.io/managed-by` counts (secretsync, Helm, an operator that sets it).
MANAGER_LABELS = (
    "app.kubernetes.io/managed-by",
    "owner",  # Helm's release Secrets (owner=helm), kept for Opaque look-alikes
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
    if any(label in labels for label in MANAGER_LABELS):
        return
    if any(note in annotations for note in MANAGER_ANNOTATIONS):
        return
    if meta.get("name") == "secretsync-state":
        return  # the operator's own HMAC key (lease state Secrets have a type of their own)
    created = meta.get("creationTimestamp")
    age = _age_days(created, now) if isinstance(created, str) else None
    evidence = "no owner, no manager label or annotation"
    if age is not None:
        evidence += f"; created {age} days ago"
    yield Finding(
        check=HAND_MADE_SECRET.id, ref=ref_of("Secret", obj), field="metadata", evidence=evidence
    )


def _age_days(stamp: str, now: float | None) -> int | None:
    try:
        created = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except ValueError:
        return None
    return int(((now if now is not None else time.time()) - created) // 86400)
