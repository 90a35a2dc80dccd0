"""Sharding: replicas split the namespaces among themselves through Leases.

`--shards N` makes N shard Leases (`<group>-shard-<i>` in the operator's namespace); a
namespace belongs to shard `hash(name) mod N` for good (shards.py). A replica serves
the namespaces of the shards whose Lease it holds: it watches only those, syncs only
those, and writes only there. Each replica also keeps a member Lease, so that the
others know how many are live and hold a fair share each (⌈N / replicas⌉).

The rules that keep "each namespace served by exactly one replica":

- A shard is taken only when its Lease is free: released by its holder, or unchanged
  for its whole duration by the taker's own clock (rules.Observer). Taking it is an
  update conditional on the resourceVersion that was listed, so two replicas racing for
  one shard cannot both win.
- A holder renews every RENEW seconds. It stops writing in a shard's namespaces once
  RENEW_DEADLINE has passed since its last successful renewal (`serves`, checked by the
  Kubernetes client before every write): well before the Lease's DURATION lets another
  replica take it.
- A shard given up (a replica joined; or this one stops) stops being served first:
  watches stopped, rounds in flight finished; only then is its Lease released.

Kubernetes is the only coordinator: no replica talks to another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from secretsync.engine import shards as rules
from secretsync.errors import KubeConflictError, KubeError, KubeNotFoundError
from secretsync.kube import LeaseRecord

DURATION = 15  # seconds a Lease lasts without renewal
RENEW = 5.0  # a held Lease is renewed this often
RENEW_DEADLINE = 10.0  # ...and its namespaces are not written in once this has passed
STEP = 2.0  # the loop's period: leases listed, one shard taken or given up
NAMESPACE_POLL = 5.0  # the namespace list is read this often (a new namespace waits that long)
FORGET_AFTER = 60.0  # a dead replica's member Lease is deleted this long after it expired
GROUP_LABEL = "secretsync.io/shard-group"
SHARDS_LABEL = "secretsync.io/shards"
ROLE_LABEL = "secretsync.io/lease-role"  # shard or member

logger = logging.getLogger("secretsync.sharding")

OnChange = Callable[[frozenset[str], frozenset[str]], Awaitable[None]]  # (added, removed)


class LeaseKube(Protocol):
    """What sharding needs from the Kubernetes client (kube.Kube)."""

    async def list_leases(self, namespace: str, *, label_selector: str) -> list[LeaseRecord]: ...

    async def write_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration: int,
        labels: Mapping[str, str],
        previous: LeaseRecord | None,
    ) -> LeaseRecord: ...

    async def delete_lease(self, namespace: str, name: str) -> None: ...

    async def namespace_names(self) -> set[str]: ...


class ShardManager:
    """Holds this replica's share of the shard Leases and tells `on_change` which
    namespaces it starts and stops serving."""

    def __init__(
        self,
        *,
        kube: LeaseKube,
        namespace: str,
        group: str,
        shards: int,
        identity: str,
        on_change: OnChange,
        only: tuple[str, ...] = (),  # --namespace: shard these; empty: every namespace
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._group = group
        self.shards = shards
        self.identity = identity
        self._on_change = on_change
        self._only = frozenset(only)
        self._clock = clock
        self._observer = rules.Observer()
        self._records: dict[str, LeaseRecord] = {}  # what the last listing (or our write) said
        # Replicas seen letting a shard Lease lapse -> their member Lease's renewTime then:
        # dead or frozen until that moves again (_not_lapsed).
        self._lapsed: dict[str, str] = {}
        self.held: dict[int, float] = {}  # shard -> when its Lease was last written by us
        self._served: frozenset[str] = frozenset()
        self._universe: frozenset[str] = frozenset(only)
        self._polled = -NAMESPACE_POLL
        self._last_listing: float | None = None
        self.conflict: str | None = None  # another shard count in the group, in words
        self._member = f"{group}-member-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
        self._member_renewed = float("-inf")
        self._steps = 0

    # --- what the rest of the operator asks ------------------------------------------------

    def serves(self, namespace: str) -> bool:
        """Whether this replica may write in the namespace now ("" for cluster-scoped
        objects): its shard's Lease is held and was renewed recently enough."""
        renewed = self.held.get(rules.shard_of(namespace, self.shards))
        return renewed is not None and self._clock() - renewed < RENEW_DEADLINE

    @property
    def served(self) -> frozenset[str]:
        return self._served

    def problem(self) -> str | None:
        """Why sharding cannot work, or None (readiness). Waiting for replicas of another
        shard count to leave is not a problem: a rolling update that changes `--shards`
        must be able to go on (see `conflict`)."""
        if self._last_listing is None:
            return "the shard Leases have not been read yet"
        if self._clock() - self._last_listing > DURATION:
            return f"the shard Leases could not be read for {DURATION}s"
        return None

    def describe(self) -> str:
        held = ", ".join(str(s) for s in sorted(self.held)) or "none"
        text = f"holds shards {held} of {self.shards} ({len(self._served)} namespaces)"
        return f"{text}; {self.conflict}" if self.conflict else text

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled; then `close` gives everything up."""
        while True:
            try:
                await self.step()
            except KubeError as exc:
                logger.warning("sharding: %s", exc)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad step
                logger.error("sharding step failed: %s", type(exc).__name__)
            try:
                await self._drop_lapsed()
            except Exception as exc:  # noqa: BLE001 - as above
                logger.error("sharding: dropping lapsed shards failed: %s", type(exc).__name__)
            await asyncio.sleep(STEP)

    async def step(self) -> None:
        """List the group's Leases; renew, take or give up at most one shard; serve."""
        records = await self._kube.list_leases(
            self._namespace, label_selector=f"{GROUP_LABEL}={self._group}"
        )
        now = self._clock()
        self._last_listing = now
        self._steps += 1
        self._observer.observe(records, now)
        self._records = {r.name: r for r in records}
        await self._renew(now)  # first: nothing below may delay a renewal
        try:
            await self._heartbeat(now)
        except KubeError as exc:
            logger.warning("sharding: member Lease: %s", exc)
        await self._forget_dead_members(now)
        member_records = {
            r.name: r
            for r in records
            if r.labels.get(ROLE_LABEL) == "member" and self._same_count(r)
        }
        members = self._not_lapsed(
            rules.live_members(member_records, self._observer, now, self.identity),
            member_records,
            now,
        )
        self.conflict = self._count_conflict(now)
        yielding = self._yields(now)
        if yielding:
            for shard in sorted(self.held):  # the smaller shard count goes first
                await self.give_up(shard)
        counts = dict.fromkeys(members, 0)
        for shard in range(self.shards):
            record = self._records.get(self._lease(shard))
            if record and record.holder in counts and not self._observer.expired(record, now):
                counts[record.holder] += 1
        counts[self.identity] = len(self.held)
        giving = rules.to_release(
            identity=self.identity, shards=self.shards, held=self.held, counts=counts
        )
        if giving is not None:
            await self.give_up(giving)
        elif not yielding and not self._foreign_shards(now) and self._steps > 1:
            # Not in the first step: replicas that start together first see each other's
            # member Leases, rather than the first one taking every shard.
            free = [s for s in range(self.shards) if self._free(s, now)]
            taking = rules.to_acquire(
                identity=self.identity,
                shards=self.shards,
                held=self.held,
                free=free,
                members=len(members),
            )
            if taking is not None:
                await self._take(taking)
        await self._serve()

    def _not_lapsed(
        self, members: set[str], member_records: dict[str, LeaseRecord], now: float
    ) -> set[str]:
        """The live members, less those that let a shard Lease lapse. A killed replica's
        member Lease can outlive its shard Leases by up to a heartbeat: counted live, and
        holding no shard, it looked starved, and a survivor gave it back the shard it had
        just taken (unserved until the member Lease expired too). A member is counted
        again once its member Lease moves (a frozen replica that thaws)."""
        renewed = {r.holder: r.renewed for r in member_records.values() if r.holder}
        for shard in range(self.shards):
            record = self._records.get(self._lease(shard))
            if (
                record is not None
                and record.holder
                and record.holder != self.identity
                and self._observer.expired(record, now)
            ):
                self._lapsed.setdefault(record.holder, renewed.get(record.holder, ""))
        self._lapsed = {h: r for h, r in self._lapsed.items() if renewed.get(h) == r}
        return members - set(self._lapsed)

    async def close(self) -> None:
        """Stop serving everything, then release every held Lease and the member Lease,
        so that the others take over at their next step rather than after DURATION."""
        for shard in sorted(self.held):
            with contextlib.suppress(KubeError):
                await self.give_up(shard)
        await self._set_served(frozenset())
        with contextlib.suppress(KubeError):
            await self._kube.delete_lease(self._namespace, self._member)

    async def give_up(self, shard: int) -> None:
        """Stop serving the shard's namespaces, then release its Lease."""
        self.held.pop(shard, None)
        await self._serve(poll=False)
        record = self._records.get(self._lease(shard))
        if record is None or record.holder != self.identity:
            return
        logger.info("sharding: releasing shard %d", shard)
        with contextlib.suppress(KubeConflictError, KubeNotFoundError):
            await self._write(self._lease(shard), holder="", previous=record, role="shard")

    # --- steps -------------------------------------------------------------------------------

    def _free(self, shard: int, now: float) -> bool:
        record = self._records.get(self._lease(shard))
        if record is None or self._observer.expired(record, now):
            return True
        # Held in this replica's name but not by this process: its previous life (a Pod
        # restarted under the same name), which is gone.
        return record.holder == self.identity and shard not in self.held

    def _lease(self, shard: int) -> str:
        return f"{self._group}-shard-{shard}"

    async def _write(
        self, name: str, *, holder: str, previous: LeaseRecord | None, role: str
    ) -> LeaseRecord:
        record = await self._kube.write_lease(
            self._namespace,
            name,
            holder=holder,
            duration=DURATION,
            labels={GROUP_LABEL: self._group, SHARDS_LABEL: str(self.shards), ROLE_LABEL: role},
            previous=previous,
        )
        self._records[name] = record
        return record

    async def _heartbeat(self, now: float) -> None:
        record = self._records.get(self._member)
        mine = record is not None and record.holder == self.identity
        if mine and now - self._member_renewed < RENEW:
            return
        await self._write(self._member, holder=self.identity, previous=record, role="member")
        self._member_renewed = now

    async def _renew(self, now: float) -> None:
        for shard, renewed in list(self.held.items()):
            record = self._records.get(self._lease(shard))
            if record is None or record.holder != self.identity:
                logger.warning(
                    "sharding: shard %d was taken by %s", shard, record and record.holder
                )
                self.held.pop(shard, None)
                continue
            if now - renewed < RENEW:
                continue
            # The time before sending: the others count the Lease's duration from when
            # they see the renewal, which is never earlier than this.
            sent = self._clock()
            try:
                await self._write(
                    self._lease(shard), holder=self.identity, previous=record, role="shard"
                )
            except (KubeConflictError, KubeNotFoundError):
                logger.warning("sharding: lost shard %d to another replica", shard)
                self.held.pop(shard, None)
            except KubeError as exc:
                logger.warning("sharding: could not renew shard %d: %s", shard, exc)
            else:
                if shard in self.held:  # not given up meanwhile
                    self.held[shard] = sent

    async def _take(self, shard: int) -> None:
        name = self._lease(shard)
        sent = self._clock()  # see _renew
        try:
            await self._write(
                name, holder=self.identity, previous=self._records.get(name), role="shard"
            )
        except KubeConflictError:
            return  # another replica took it first
        logger.info("sharding: took shard %d", shard)
        self.held[shard] = sent

    def _same_count(self, record: LeaseRecord) -> bool:
        return record.labels.get(SHARDS_LABEL) == str(self.shards)

    def _foreign(self, now: float) -> list[LeaseRecord]:
        """Live Leases (shards and members) of replicas with another shard count: a change
        of `--shards` under way. Their namespaces map to other shards, so the two counts
        must never serve at once: the smaller count goes first, and no shard is taken while
        a shard Lease of the other count is held."""
        return [
            r
            for r in self._records.values()
            if r.holder
            and r.holder != self.identity
            and not self._same_count(r)
            and not self._observer.expired(r, now)
        ]

    def _foreign_shards(self, now: float) -> bool:
        return any(r.labels.get(ROLE_LABEL) == "shard" for r in self._foreign(now))

    def _count_conflict(self, now: float) -> str | None:
        foreign = self._foreign(now)
        if not foreign:
            return None
        counts = sorted({r.labels.get(SHARDS_LABEL, "?") for r in foreign})
        return (
            f"replicas with --shards {', '.join(counts)} are live in group {self._group} "
            f"(this one has --shards {self.shards}): the smaller count serves, the other "
            "waits for it to leave"
        )

    def _yields(self, now: float) -> bool:
        """Whether this replica gives way: a live replica has a smaller shard count."""
        for record in self._foreign(now):
            try:
                if int(record.labels.get(SHARDS_LABEL, "")) < self.shards:
                    return True
            except ValueError:
                continue
        return False

    async def _forget_dead_members(self, now: float) -> None:
        """Delete the member Leases of replicas gone without a goodbye (SIGKILL, node
        lost), once expired for a while, so that the group's listing stays small."""
        for record in list(self._records.values()):
            if (
                record.labels.get(ROLE_LABEL) == "member"
                and record.holder != self.identity
                and self._observer.expired(record, now - FORGET_AFTER)
            ):
                with contextlib.suppress(KubeError):
                    await self._kube.delete_lease(self._namespace, record.name)
                    logger.info("sharding: deleted the member Lease of %s", record.holder)

    async def _drop_lapsed(self) -> None:
        """Shards not renewed in time are not served (`serves` already refuses writes)."""
        now = self._clock()
        lapsed = [s for s, renewed in self.held.items() if now - renewed >= RENEW_DEADLINE]
        for shard in lapsed:
            logger.warning(
                "sharding: shard %d not renewed for %.0fs; not serving it", shard, RENEW_DEADLINE
            )
            self.held.pop(shard, None)
        if lapsed:
            await self._serve(poll=False)

    async def _serve(self, *, poll: bool = True) -> None:
        now = self._clock()
        if poll and not self._only and now - self._polled >= NAMESPACE_POLL:
            self._universe = frozenset(await self._kube.namespace_names())
            self._polled = now
        wanted = frozenset(
            ns for ns in self._universe if rules.shard_of(ns, self.shards) in self.held
        )
        await self._set_served(wanted)

    async def _set_served(self, wanted: frozenset[str]) -> None:
        added, removed = wanted - self._served, self._served - wanted
        if not added and not removed:
            return
        # Awaited: a namespace leaves before its shard's Lease does. If the change fails
        # half-way, the next step computes it again (each part of it is idempotent).
        previous, self._served = self._served, wanted
        try:
            await self._on_change(added, removed)
        except BaseException:
            self._served = previous
            raise
