"""Sessions cached per identity: one login per credential lifetime, never one per sync."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

# Renew when this share of the lifetime is left, and never later than this many
# seconds before expiry: a session must outlive the sync that is using it.
RENEW_SHARE = 0.2
RENEW_MARGIN = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class IdentityKey:
    """Who logs in: a store (at one generation) as one identity in one namespace."""

    store: str  # "SecretStore/team-a/aws" or "ClusterSecretStore/shared"
    generation: int
    identity: str  # LoginPlan.describe()


class Expiring(Protocol):
    """A logged-in session: providers' Session satisfies it."""

    @property
    def expires_at(self) -> float | None: ...


S = TypeVar("S", bound=Expiring)


@dataclasses.dataclass(slots=True)
class _Entry(Generic[S]):
    session: S
    renew_at: float | None


class IdentityCache(Generic[S]):
    """Logged-in sessions by identity, renewed shortly before they expire.

    Concurrent syncs of one identity share one login (single flight).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[IdentityKey, _Entry[S]] = {}
        self._locks: dict[IdentityKey, asyncio.Lock] = {}
        self.logins = 0  # for metrics and tests

    async def session(self, key: IdentityKey, login: Callable[[], Awaitable[S]]) -> S:
        """The cached session for the identity, logging in when there is none or it is due."""
        entry = self._entries.get(key)
        if entry is not None and not self._due(entry):
            return entry.session
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and not self._due(entry):
                return entry.session
            session = await login()
            self.logins += 1
            self._entries[key] = _Entry(session=session, renew_at=self._renew_at(session))
            return session

    def forget(self, store: str) -> None:
        """Drop every session of a store (its spec changed, it was deleted, or auth failed)."""
        for key in [k for k in self._entries if k.store == store]:
            del self._entries[key]
        self._drop_idle_locks()

    def sweep(self) -> list[IdentityKey]:
        """Drop sessions past their expiry (nobody renewed them: nobody used them since)
        and return their keys, so a cache of per-namespace identities does not grow
        with every namespace that ever synced."""
        now = self._clock()
        gone = [
            key
            for key, entry in self._entries.items()
            if entry.session.expires_at is not None and entry.session.expires_at <= now
        ]
        for key in gone:
            del self._entries[key]
        self._drop_idle_locks()
        return gone

    def __len__(self) -> int:
        return len(self._entries)

    def _drop_idle_locks(self) -> None:
        # A lock only matters while a login holds it or for a key still cached.
        for key in [k for k, lock in self._locks.items() if not lock.locked()]:
            if key not in self._entries:
                del self._locks[key]

    def _due(self, entry: _Entry[S]) -> bool:
        return entry.renew_at is not None and self._clock() >= entry.renew_at

    def _renew_at(self, session: S) -> float | None:
        if session.expires_at is None:
            return None
        now = self._clock()
        lifetime = max(session.expires_at - now, 0.0)
        return session.expires_at - max(lifetime * RENEW_SHARE, min(RENEW_MARGIN, lifetime / 2))
