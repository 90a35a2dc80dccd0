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

LISTING_GAP = 5.0  # listing events further apart than this belong to separate listings
LISTING_SETTLE = 30.0  # a listing is over when no listing event came for this long


def fingerprint(key: str, value: str) -> int:
    """A short digest of one label or annotation: set membership, no values kept."""
    digest = hashlib.blake2b(f"{key}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecretState:
    """A managed Secret as the watch last delivered it."""

    resource_version: str
    data_hash: str
    seen: float  # monotonic time of the watch event that said so
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


def state_of(body: Mapping[str, Any], key: bytes, *, seen: float) -> SecretState:
    """The state of a Secret from a watch event's body."""
    meta = body.get("metadata") or {}
    data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
    return SecretState(
        resource_version=str(meta.get("resourceVersion", "")),
        data_hash=hashing.data_hash(key, data),
        seen=seen,
        type=str(body.get("type") or "Opaque"),
        immutable=bool(body.get("immutable")),
        owner_uids=tuple(str(o.get("uid", "")) for o in meta.get("ownerReferences") or ()),
        labels=frozenset(fingerprint(k, str(v)) for k, v in (meta.get("labels") or {}).items()),
        annotations=frozenset(
            fingerprint(k, str(v)) for k, v in (meta.get("annotations") or {}).items()
        ),
    )


class SecretCache:
    """SecretStates by (namespace, name).

    A watch that breaks (410 Gone after an apiserver restart) is re-listed from scratch,
    and a Secret deleted in the gap never sends its DELETED event: its entry would say
    it exists for good. So when a listing begins (events of kopf's initial listing come
    without a type), entries that the listing does not repeat within LISTING_SETTLE
    seconds are dropped (`prune`), and a round then reads the Secret itself."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], SecretState] = {}
        self._listing_began: float | None = None
        self._last_listed = -LISTING_GAP

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

    def clear(self) -> None:
        self._states.clear()
        self._listing_began = None

    def listed(self, now: float) -> None:
        """An event of a listing arrived (see the class docstring)."""
        if now - self._last_listed > LISTING_GAP:
            self._listing_began = now
        self._last_listed = now

    def prune(self, now: float) -> int:
        """After a listing has settled, drop what it did not repeat; returns how many."""
        began = self._listing_began
        if began is None or now - self._last_listed < LISTING_SETTLE:
            return 0
        self._listing_began = None
        stale = [k for k, state in self._states.items() if state.seen < began]
        for key in stale:
            del self._states[key]
        return len(stale)
