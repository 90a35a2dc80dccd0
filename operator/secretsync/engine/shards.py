"""Which shard a namespace belongs to, and which shards a replica should hold: the pure
part of sharding (docs/design/0009-sharding.md), kept apart from the Lease I/O.

A namespace belongs to one shard for good (a hash of its name modulo the shard count),
so every replica computes the same assignment without talking to the others. Shards
move between replicas, namespaces never move between shards: a replica that holds a
shard's Lease serves exactly that shard's namespaces.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from secretsync.kube import LeaseRecord

CLUSTER_SCOPE = ""  # cluster-scoped objects (ClusterSecretStore statuses) belong to shard_of("")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def shard_of(namespace: str, shards: int) -> int:
    """The shard a namespace belongs to: stable across replicas, restarts and versions."""
    return _digest(namespace) % shards


def fair_share(shards: int, members: int) -> int:
    """How many shards one replica holds at most when `members` replicas are live."""
    return math.ceil(shards / max(members, 1))


def preference(identity: str, shards: int) -> list[int]:
    """The order in which a replica wants shards (rendezvous hashing): replicas prefer
    different shards, so that they seldom race for the same free one, and a replica
    that restarts under the same name (a StatefulSet's Pod) wants the same ones back."""
    return sorted(range(shards), key=lambda shard: _digest(f"{identity}/{shard}"), reverse=True)


class Observer:
    """Tells which Leases have expired, by this replica's own clock.

    Like client-go's leader election, a Lease counts as expired when its record has
    not changed for its duration since this replica first saw it so, rather than by
    comparing its renewTime with the local time: replicas' clocks may disagree, and a
    replica that has just started waits one full duration before it takes a Lease
    that someone else held."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[str, str], float]] = {}

    def observe(self, records: Iterable[LeaseRecord], now: float) -> None:
        current: dict[str, tuple[tuple[str, str], float]] = {}
        for record in records:
            state = (record.holder, record.renewed)
            old = self._seen.get(record.name)
            current[record.name] = (state, old[1] if old and old[0] == state else now)
        self._seen = current

    def expired(self, record: LeaseRecord, now: float) -> bool:
        """Free for the taking: released, or unchanged for longer than its duration."""
        if not record.holder:
            return True
        seen = self._seen.get(record.name)
        return seen is not None and now - seen[1] > record.duration


def live_members(
    members: Mapping[str, LeaseRecord], observer: Observer, now: float, identity: str
) -> set[str]:
    """The replicas whose member Lease is alive, this one included."""
    alive = {r.holder for r in members.values() if r.holder and not observer.expired(r, now)}
    return alive | {identity}


def to_acquire(
    *,
    identity: str,
    shards: int,
    held: Iterable[int],
    free: Iterable[int],
    members: int,
) -> int | None:
    """The one shard to take now, if this replica holds less than its fair share: one
    per step, so that replicas starting together see each other before one takes all."""
    held_set = set(held)
    if len(held_set) >= fair_share(shards, members):
        return None
    free_set = set(free) - held_set
    return next((s for s in preference(identity, shards) if s in free_set), None)


def to_release(
    *, identity: str, shards: int, held: Iterable[int], counts: Mapping[str, int]
) -> int | None:
    """The one shard to give up now, the one this replica wants least, if it holds more
    than its fair share (a replica joined), or more than the floor of it while another
    live replica holds less than that floor (4 shards over 3 replicas: 2, 1, 1, never
    2, 2, 0). `counts` is how many shards each live replica holds, this one included."""
    held_set = set(held)
    members = max(len(counts), 1)
    floor = shards // members
    starved = any(n < floor for member, n in counts.items() if member != identity)
    if len(held_set) <= fair_share(shards, members) and not (starved and len(held_set) > floor):
        return None
    return next(s for s in reversed(preference(identity, shards)) if s in held_set)
