"""The context of one ExternalSecret spec's conversion, which syncs, targets and
sources share."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from secretsync.convert.fields import Unconvertible
from secretsync.convert.report import ObjectReport
from secretsync.convert.stores import StoreFacts


@dataclasses.dataclass(slots=True, kw_only=True)
class SyncContext:
    """One ExternalSecret spec being converted, and where its findings go."""

    report: ObjectReport
    prefix: str  # "spec" or "spec.externalSecretSpec"
    metadata: Mapping[str, Mapping[str, str]]  # the labels and annotations ESO copies
    store: StoreFacts | None = None  # once secretStoreRef is read; None: not in the input

    def at(self, path: str) -> str:
        """The input's field path of path, a path inside the spec."""
        return f"{self.prefix}.{path}" if path else self.prefix

    def fail(self, path: str, reason: str) -> Unconvertible:
        """Drop the whole object (the caller raises what this returns)."""
        self.report.drop(self.at(path), reason)
        return Unconvertible()
