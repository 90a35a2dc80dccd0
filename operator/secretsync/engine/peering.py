"""Which replica acts: the engine follows kopf's peering decision.

kopf pauses the watches of a replica that sees a live peer of higher priority (or of
the same priority) in the group's (Cluster)KopfPeering, and resumes them when no such
peer is left. It does not pause what the operator runs by itself: the engine's
schedule, its event consumers and the webhook. So each replica reads the same peering
object and applies the same rule to itself; the active one runs its engine, the others
stand by (no provider call, no write) and take over when the active one's heartbeat
lapses or it leaves the group on exit.

The object is polled rather than watched: one small GET-like list every few seconds per
replica is cheaper than a watch connection, and it keeps working through the same
apiserver faults that kopf's own peering watch rides out. The rule is kopf's (see
kopf's peering documentation): a peer is live until lastseen + lifetime; this replica
acts when no live peer other than itself has a priority >= its own.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from secretsync.errors import KubeError
from secretsync.kube import Kube

POLL_SECONDS = 5.0
STEP_DOWN = 60.0  # kopf's peering lifetime: after that long unseen, peers take over

logger = logging.getLogger("secretsync.peering")

Peers = Mapping[str, Mapping[str, Any]]  # identity -> {priority, lifetime, lastseen}


def _deadline(info: Mapping[str, Any]) -> datetime.datetime | None:
    try:
        seen = datetime.datetime.fromisoformat(str(info["lastseen"]))
        lifetime = datetime.timedelta(seconds=int(info.get("lifetime", 60)))
    except (KeyError, TypeError, ValueError):
        return None
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.UTC)
    return seen + lifetime


def blockers(peers: Peers, *, identity: str, priority: int, now: datetime.datetime) -> list[str]:
    """The live peers that keep this replica from acting (kopf's rule)."""
    out = []
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        deadline = _deadline(info)
        if deadline is None or deadline <= now:
            continue  # dead (or unreadable, which kopf would not keep either)
        try:
            their = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if their >= priority:
            out.append(peer)
    return sorted(out)


class PeeringMonitor:
    """Polls the group's peering objects and calls `on_change(active)` on every change
    of this replica's role.

    A replica starts standing by, and acts only when two readings at least one poll
    apart, the first of them already showing its own heartbeat, both find no peer in
    its way. Replicas that start together would otherwise each read the object before
    the other's heartbeat is in it, and both act until their next reading; after a poll
    each has seen the other's. A replica that sees a peer in its way stands by at once."""

    def __init__(
        self,
        *,
        kube: Kube,
        name: str,
        namespaces: Sequence[str | None],  # None: the ClusterKopfPeering
        identity: str,
        priority: int,
        on_change: Callable[[bool], Awaitable[None]],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._kube = kube
        self._name = name
        self._namespaces = list(namespaces)
        self._identity = identity
        self._priority = priority
        self._on_change = on_change
        self._poll = poll
        self.active = False
        self._clear_since: float | None = None  # monotonic time of the first clear reading

    async def run(self) -> None:
        """Poll until cancelled. A failed reading changes nothing at first (a short
        apiserver restart must not hand the work over); a replica that has read nothing
        for longer than kopf's peering lifetime stands by, since its peers have presumed
        it dead and one of them acts. Its readiness says meanwhile that it cannot reach
        the API."""
        last_read = asyncio.get_running_loop().time()
        while True:
            try:
                peers = await self._read()
            except KubeError as exc:
                logger.warning("cannot read the peering %s: %s", self._name, exc)
                silent = asyncio.get_running_loop().time() - last_read
                if self.active and silent > STEP_DOWN:
                    await self._change(False, f"no reading for {silent:.0f}s")
            else:
                last_read = asyncio.get_running_loop().time()
                try:
                    await self._decide(peers)
                except Exception as exc:  # noqa: BLE001 - the type only: the poll must go on
                    logger.error(
                        "peering %s: role change failed: %s", self._name, type(exc).__name__
                    )
            await asyncio.sleep(self._poll)

    async def _change(self, active: bool, why: str) -> None:
        logger.info(
            "peering %s: %s (%s)", self._name, "this replica acts" if active else "standing by", why
        )
        self.active = active
        await self._on_change(active)

    async def _decide(self, peers: Peers) -> None:
        now = datetime.datetime.now(datetime.UTC)
        blocked = blockers(peers, identity=self._identity, priority=self._priority, now=now)
        if blocked:
            self._clear_since = None
            if self.active:
                await self._change(False, "for " + ", ".join(blocked))
            return
        if self.active:
            return
        tick = asyncio.get_running_loop().time()
        if self._clear_since is None:
            if self._identity in peers:  # kopf has announced this replica: start counting
                self._clear_since = tick
            return
        if tick - self._clear_since >= self._poll:
            await self._change(True, "no live peer in its way")

    async def _read(self) -> dict[str, Mapping[str, Any]]:
        merged: dict[str, Mapping[str, Any]] = {}
        for namespace in self._namespaces:
            merged.update(await self._kube.peering_status(self._name, namespace=namespace))
        return merged
