"""What the managed-Secret watch last said about each managed Secret, kept small: its
resourceVersion, a keyed hash of its data, and fingerprints of its metadata; never its
data. A refresh compares what it would write with this instead of reading the Secret:
an unchanged refresh costs no Kubernetes request (docs/design/0008-performance.md)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from secretsync.engine import hashing


def fingerprint(key: str, value: str) -> int:
    """A short digest of one label or annotation: set membership, no values kept."""
    digest = hashlib.blake2b(f"{key}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecretState:
    """A managed Secret as the watch last delivered it."""

    resource_version: str
    data_hash: str
    type: str
    immutable: bool
    owner_uids: tuple[str, ...]
    labels: frozenset[int]  # fingerprints of key=value
    annotations: frozenset[int]

    def covers(self, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
        """Whether it carries every one of these labels and annotations, with these values."""
        return _all_in(labels.items(), self.labels) and _all_in(
            annotations.items(), self.annotations
        )


def _all_in(items: Iterable[tuple[str, str]], prints: frozenset[int]) -> bool:
    return all(fingerprint(k, v) in prints for k, v in items)


def state_of(body: Mapping[str, Any], key: bytes) -> SecretState:
    """The state of a Secret from a watch event's body."""
    meta = body.get("metadata") or {}
    data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
    return SecretState(
        resource_version=str(meta.get("resourceVersion", "")),
        data_hash=hashing.data_hash(key, data),
        type=str(body.get("type") or "Opaque"),
        immutable=bool(body.get("immutable")),
        owner_uids=tuple(str(o.get("uid", "")) for o in meta.get("ownerReferences") or ()),
        labels=frozenset(fingerprint(k, str(v)) for k, v in (meta.get("labels") or {}).items()),
        annotations=frozenset(
            fingerprint(k, str(v)) for k, v in (meta.get("annotations") or {}).items()
        ),
    )


class SecretCache:
    """SecretStates by (namespace, name)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], SecretState] = {}

    def __len__(self) -> int:
        return len(self._states)

    def put(self, namespace: str, name: str, state: SecretState | None) -> None:
        """Record what the watch said (None: deleted)."""
        if state is None:
            self._states.pop((namespace, name), None)
        else:
            self._states[(namespace, name)] = state

    def get(self, namespace: str, name: str) -> SecretState | None:
        return self._states.get((namespace, name))
