"""Scans what the operator emitted for secret values, raw or base64-encoded."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

import kubernetes

MIN_LENGTH = 8  # shorter values would match by accident


def forms(value: bytes) -> set[bytes]:
    """The ways a value could appear: raw, base64 (standard and URL-safe), in JSON."""
    out = {value, base64.b64encode(value), base64.urlsafe_b64encode(value)}
    out.add(json.dumps(value.decode(errors="replace"))[1:-1].encode())
    return {f for f in out if len(f) >= MIN_LENGTH}


def find(sources: Mapping[str, bytes], values: Iterable[bytes]) -> list[str]:
    """Each (source, value) pair where a form of the value occurs, described without it."""
    hits = []
    for value in values:
        for form in forms(value):
            for name, text in sources.items():
                if form in text:
                    hits.append(f"{name} contains a secret value ({len(value)} bytes) in some form")
    return sorted(set(hits))


def cluster_sources(api: Any) -> dict[str, bytes]:
    """Events, statuses of the three kinds, and managed Secrets' metadata, as JSON."""
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    out: dict[str, bytes] = {}
    events = [
        {"reason": e.reason, "message": e.message, "note": getattr(e, "note", None)}
        for e in core.list_event_for_all_namespaces().items
    ]
    out["events"] = json.dumps(events).encode()
    for plural in ("secretsyncs", "secretstores", "clustersecretstores"):
        listed: Any = custom.list_cluster_custom_object("secretsync.io", "v1alpha1", plural)
        items = listed["items"]
        out[f"{plural} status and metadata"] = json.dumps(
            [{"status": i.get("status"), "metadata": i.get("metadata")} for i in items]
        ).encode()
    secrets = core.list_secret_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by=secretsync"
    ).items
    out["managed Secrets' labels and annotations"] = json.dumps(
        [
            {"labels": s.metadata.labels, "annotations": s.metadata.annotations}
            for s in secrets
            if s.metadata is not None
        ]
    ).encode()
    return out
