"""Kubernetes requests as kube-apiserver's audit log recorded them (metadata only), for
the benchmarks and the fault suite.

The operator's requests are told apart by their user agent: the operator's
Kubernetes client and kopf's watcher, while the benchmark's own clients say
`secretsync-bench` and kubectl says `kubectl/...`. Two operators are told apart by
the user they authenticate as.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
from datetime import datetime
from pathlib import Path

BENCH_AGENT = "secretsync-bench"
OPERATOR_AGENTS = ("OpenAPI-Generator/", "kopf/")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    at: float  # stageTimestamp, epoch seconds
    verb: str
    resource: str  # "secrets", "secretsyncs/status", "events", ...
    namespace: str
    name: str
    code: int
    agent: str
    user: str = ""  # the authenticated user name
    uri: str = ""  # the request URI, with its query (labelSelector, watch, ...)

    @property
    def by_operator(self) -> bool:
        return self.agent.startswith(OPERATOR_AGENTS)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class AuditLog:
    """Reads the audit log incrementally; keeps only what counting needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        stat = path.stat() if path.exists() else None
        self._offset = stat.st_size if stat else 0  # what earlier runs wrote does not count
        self._inode = stat.st_ino if stat else 0
        self._partial = b""
        self._requests: list[Request] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock, self.path.open("rb") as f:
            stat = os.fstat(f.fileno())
            if stat.st_ino != self._inode or stat.st_size < self._offset:
                # Rotated (an environment started without the harness's flags): follow the
                # new file from its start; what the old one held after the last read is lost.
                self._inode, self._offset, self._partial = stat.st_ino, 0, b""
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete":
                    continue
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", "")
                if ref.get("subresource"):
                    resource += "/" + ref["subresource"]
                self._requests.append(
                    Request(
                        at=_epoch(event["stageTimestamp"]),
                        verb=event.get("verb", ""),
                        resource=resource,
                        namespace=ref.get("namespace", ""),
                        name=ref.get("name", ""),
                        code=int((event.get("responseStatus") or {}).get("code") or 0),
                        agent=event.get("userAgent", ""),
                        user=(event.get("user") or {}).get("username", ""),
                        uri=event.get("requestURI", ""),
                    )
                )

    def requests(
        self, start: float, end: float, *, namespace_prefix: str = "", operator_only: bool = True
    ) -> list[Request]:
        self.refresh()
        with self._lock:
            return [
                r
                for r in self._requests
                if start <= r.at < end
                and (not operator_only or r.by_operator)
                and r.namespace.startswith(namespace_prefix)
            ]

    def counts(self, start: float, end: float, *, namespace_prefix: str = "") -> dict[str, int]:
        """The operator's requests between two times, as {"<verb> <resource>": count}."""
        found = collections.Counter(
            f"{r.verb} {r.resource}"
            for r in self.requests(start, end, namespace_prefix=namespace_prefix)
        )
        return dict(sorted(found.items()))


def writes(counts: dict[str, int], resource: str) -> int:
    """Write requests (create, update, patch, delete) on one resource in a counts map."""
    total = 0
    for key, n in counts.items():
        verb, _, res = key.partition(" ")
        if verb in WRITE_VERBS and res == resource:
            total += n
    return total
