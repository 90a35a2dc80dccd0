"""SS001 (literal secrets in env, command and args) and SS003 (Secrets consumed as
environment variables), over every Pod template of the cluster.

A Pod or Job made by a controller is reported at its controller (the Deployment's
ReplicaSet's Pods, a CronJob's Jobs), so each problem is reported once, where it is
fixed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from secretsync.scan import literals
from secretsync.scan.model import LITERAL_IN_WORKLOAD, SECRET_IN_ENV, Finding, ObjectRef

# Where each kind keeps its Pod spec.
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# The controllers whose Pod template the object was made from, by the object's kind.
TEMPLATE_OWNERS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("ReplicaSet", "StatefulSet", "DaemonSet", "Job"),
    "ReplicaSet": ("Deployment",),
    "Job": ("CronJob",),
}
# A keyword hit on a variable that names something (a Secret's name, a file) is not a
# secret: `DB_SECRET_NAME: db-credentials`, `PASSWORD_FILE: /run/secrets/db`.
NAMING_SUFFIXES = ("_NAME", "_FILE", "_PATH", "_DIR", "_REF")


def controlled(kind: str, obj: Mapping[str, Any]) -> bool:
    """Whether a controller the audit also lists made the object from its own template
    (then the problem is reported, and fixed, there). Objects other controllers made (an
    operator's Deployment, a CI system's Pods) are scanned themselves."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    makers = TEMPLATE_OWNERS.get(kind, ())
    return any(o.get("controller") and o.get("kind") in makers for o in owners)


def ref_of(kind: str, obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(kind=kind, namespace=meta.get("namespace"), name=meta.get("name", ""))


def pod_spec(kind: str, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Any = obj
    for step in POD_SPEC_PATHS[kind]:
        node = node.get(step) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def check(kind: str, obj: Mapping[str, Any]) -> Iterator[Finding]:
    """Every SS001 and SS003 finding of one workload (call inside literals.detectors())."""
    if controlled(kind, obj):
        return
    ref = ref_of(kind, obj)
    spec = pod_spec(kind, obj)
    base = ".".join(POD_SPEC_PATHS[kind])
    for list_name in CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            where = f"{base}.{list_name}[{container.get('name', '?')}]"
            yield from _literals(ref, where, container)
            yield from _secret_env(ref, where, container)


def _literals(ref: ObjectRef, where: str, container: Mapping[str, Any]) -> Iterator[Finding]:
    for env in container.get("env") or []:
        value = env.get("value")
        if not isinstance(value, str) or not value:
            continue
        name = str(env.get("name", ""))
        found = literals.in_assignment(name, value)
        if found == [literals.KEYWORD] and name.upper().endswith(NAMING_SUFFIXES):
            continue
        if found:
            yield _literal(ref, f"{where}.env[{name}].value", found)
    for field in ("command", "args"):
        words = [w if isinstance(w, str) else "" for w in container.get(field) or []]
        for index, word in enumerate(words):
            found, at = literals.in_argument(word), index
            following = words[index + 1] if index + 1 < len(words) else ""
            if not found and _flag(word) and following and not following.startswith("-"):
                # `--db-password hunter2`: the flag names the next word, where the fix is.
                found, at = literals.in_argument(f"{word}={following}"), index + 1
            if found:
                yield _literal(ref, f"{where}.{field}[{at}]", found)


def _flag(word: str) -> bool:
    return word.startswith("-") and "=" not in word


def _literal(ref: ObjectRef, field: str, detectors: list[str]) -> Finding:
    return Finding(
        check=LITERAL_IN_WORKLOAD.id,
        ref=ref,
        field=field,
        evidence="detect-secrets: " + ", ".join(detectors),
    )


def _secret_env(ref: ObjectRef, where: str, container: Mapping[str, Any]) -> Iterator[Finding]:
    for env in container.get("env") or []:
        key_ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if key_ref:
            yield Finding(
                check=SECRET_IN_ENV.id,
                ref=ref,
                field=f"{where}.env[{env.get('name', '?')}].valueFrom.secretKeyRef",
                evidence=f"key {key_ref.get('key', '?')} of Secret {key_ref.get('name', '?')}",
            )
    for index, source in enumerate(container.get("envFrom") or []):
        secret_ref = source.get("secretRef")
        if secret_ref:
            yield Finding(
                check=SECRET_IN_ENV.id,
                ref=ref,
                field=f"{where}.envFrom[{index}].secretRef",
                evidence=f"every key of Secret {secret_ref.get('name', '?')}",
            )
