"""Values read lately, per identity, for SecretSyncs that sync for the first time.

When many SecretSyncs arrive at once (a `kubectl apply` or a GitOps sync of hundreds),
they reach the engine over seconds and sync in several rounds; without this, every
round would read again the remote keys an earlier round read a moment ago. A first
sync may use a value read within the window: it is what the SecretSync would have got
had it been created that much earlier. Every other sync (a refresh, an event, a change
check, a forced sync, a repair) reads afresh, and refreshes what is kept here. Values
are dropped after the window, and with their store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from secretsync.auth.identity import IdentityKey
from secretsync.errors import ProviderError
from secretsync.models.remote import RemoteRef, RemoteValue

WINDOW = 30.0  # seconds a value read may serve first syncs


class RecentValues:
    """Values by (identity, ref), with when they were read."""

    def __init__(
        self, *, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._values: dict[tuple[IdentityKey, RemoteRef], tuple[float, RemoteValue]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def take(
        self, identity: IdentityKey, refs: Iterable[RemoteRef]
    ) -> dict[RemoteRef, RemoteValue]:
        """The refs' values read within the window, where there are any."""
        self._expire()
        out = {}
        for ref in refs:
            kept = self._values.get((identity, ref))
            if kept is not None:
                out[ref] = kept[1]
        return out

    def keep(
        self, identity: IdentityKey, results: Mapping[RemoteRef, RemoteValue | ProviderError]
    ) -> None:
        """Remember what a round read (a failed read forgets what was kept for that ref)."""
        now = self._clock()
        for ref, result in results.items():
            if isinstance(result, RemoteValue):
                self._values[(identity, ref)] = (now, result)
            else:
                self._values.pop((identity, ref), None)

    def forget(self, store: str) -> None:
        """Drop every value read through a store (changed, deleted, or its login refused)."""
        for key in [k for k in self._values if k[0].store == store]:
            del self._values[key]

    def clear(self) -> None:
        self._values.clear()

    def expire(self) -> None:
        """Drop what is older than the window (also done at every take)."""
        self._expire()

    def _expire(self) -> None:
        horizon = self._clock() - self._window
        for key in [k for k, (at, _) in self._values.items() if at < horizon]:
            del self._values[key]
