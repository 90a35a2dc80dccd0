"""What the managed-Secret watch last said about each managed Secret, kept small: its
resourceVersion, a keyed hash of its data, and fingerprints of its metadata; never its
data. A refresh compares what it would write with this instead of reading the Secret:
an unchanged refresh costs no Kubernetes request (docs/design/0008-performance.md)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from secretsync.engine import hashing

LISTING_GAP = 5.0  # listing events further apart than this belong to separate listings
LISTING_SETTLE = 30.0  # a listing is over when no listing event came for this long


def fingerprint(key: str, value: str = "") -> bytes:
    """A short digest of one label or annotation (or owner uid): set membership, no
    values kept."""
    return hashlib.blake2b(f"{key}\0{value}".encode(), digest_size=8).digest()


def _prints(items: Iterable[bytes]) -> bytes:
    """Fingerprints packed into one bytes object, sorted: a few dozen bytes, where a
    frozenset of ints costs hundreds (the cache holds one per managed Secret)."""
    return b"".join(sorted(items))


def _has(prints: bytes, one: bytes) -> bool:
    return any(prints[i : i + 8] == one for i in range(0, len(prints), 8))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SecretState:
    """A managed Secret as the watch last delivered it."""

    resource_version: str
    data_hash: str
    seen: float  # monotonic time of the watch event that said so
    type: str
    immutable: bool
    owners: bytes  # fingerprints of the ownerReferences' uids, in order
    labels: bytes  # fingerprints of key=value, packed (_prints)
    annotations: bytes

    def covers(self, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
        """Whether it carries every one of these labels and annotations, with these values."""
        return _all_in(labels.items(), self.labels) and _all_in(
            annotations.items(), self.annotations
        )

    def owned_by(self, uids: tuple[str, ...]) -> bool:
        """Whether its ownerReferences are exactly these uids."""
        return self.owners == b"".join(fingerprint(uid) for uid in uids)


def _all_in(items: Iterable[tuple[str, str]], prints: bytes) -> bool:
    return all(_has(prints, fingerprint(k, v)) for k, v in items)


def state_of(body: Mapping[str, Any], key: bytes, *, seen: float) -> SecretState:
    """The state of a Secret from a watch event's body."""
    meta = body.get("metadata") or {}
    data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
    return SecretState(
        resource_version=str(meta.get("resourceVersion", "")),
        data_hash=hashing.data_hash(key, data),
        seen=seen,
        type=sys.intern(str(body.get("type") or "Opaque")),
        immutable=bool(body.get("immutable")),
        owners=b"".join(
            fingerprint(str(o.get("uid", ""))) for o in meta.get("ownerReferences") or ()
        ),
        labels=_prints(fingerprint(k, str(v)) for k, v in (meta.get("labels") or {}).items()),
        annotations=_prints(
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
        # Per watch: None for one cluster-wide watch, else the namespace of each watch.
        self._listing_began: dict[str | None, float] = {}
        self._last_listed: dict[str | None, float] = {}

    def __len__(self) -> int:
        return len(self._states)

    def put(self, namespace: str, name: str, state: SecretState | None) -> None:
        """Record what the watch said (None: deleted)."""
        if state is None:
            self._states.pop((namespace, name), None)
        else:
            self._states[(sys.intern(namespace), name)] = state

    def get(self, namespace: str, name: str) -> SecretState | None:
        return self._states.get((namespace, name))

    def clear(self) -> None:
        self._states.clear()
        self._listing_began.clear()
        self._last_listed.clear()

    def forget_namespace(self, namespace: str) -> None:
        for key in [k for k in self._states if k[0] == namespace]:
            del self._states[key]
        self._listing_began.pop(namespace, None)
        self._last_listed.pop(namespace, None)

    def listed(self, now: float, watch: str | None = None) -> None:
        """An event of a listing arrived from the watch of a namespace (None: the one
        cluster-wide watch); see the class docstring."""
        if now - self._last_listed.get(watch, -LISTING_GAP) > LISTING_GAP:
            self._listing_began[watch] = now
        self._last_listed[watch] = now

    def prune(self, now: float) -> int:
        """After a listing has settled, drop what it did not repeat; returns how many."""
        dropped = 0
        for watch, began in list(self._listing_began.items()):
            if now - self._last_listed[watch] < LISTING_SETTLE:
                continue
            del self._listing_began[watch]
            stale = [
                k
                for k, state in self._states.items()
                if state.seen < began and (watch is None or k[0] == watch)
            ]
            for key in stale:
                del self._states[key]
            dropped += len(stale)
        return dropped
