"""The sync engine: what is due when, grouped by identity, and what to report.

Handlers feed it watch events (SecretSyncs, stores, managed Secrets); one loop
takes due SecretSyncs, groups them by store identity so each group costs one
login (cached) and one de-duplicated batch of provider reads, and writes
statuses and Events only when what they say changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import heapq
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pydantic

from secretsync.audit import AuditLog
from secretsync.auth.plan import LoginPlan, plan_login
from secretsync.engine import (
    changes,
    matching,
    reporting,
    rollouts,
    schedule,
    secretcache,
    stores,
)
from secretsync.engine.eventsources import EventSources
from secretsync.engine.leases import LeaseJob, LeaseKeeper
from secretsync.engine.outcomes import Outcome, failed
from secretsync.engine.runner import DELETED, Runner, SyncJob
from secretsync.engine.writer import ADOPT_ANNOTATION, ADOPT_ESO, OWNER_ANNOTATION
from secretsync.errors import ConfigError, KubeError, SecretSyncError
from secretsync.kube import Kube
from secretsync.metrics import Metrics
from secretsync.models import status as st
from secretsync.models.status import Reason, Status
from secretsync.models.sync import SecretSyncSpec, parse_spec

FORCE_SYNC = "secretsync.io/force-sync"
BATCH_WINDOW = 0.05  # gather syncs that become due together into one batch
GATHER_STEP = 0.1  # while new SecretSyncs keep arriving this often, gather on...
GATHER_MAX = 1.0  # ...but never delay the first of them by more than this
CONCURRENCY = 16  # identity groups synced at once
STORE_GRACE = 10.0  # seconds after start during which a missing store is not yet reported
STORE_RECHECK = 3600.0  # a Ready store is checked again this often (and on evidence sooner)
SWEEP_INTERVAL = 60.0  # expired sessions are dropped this often
DRIFT_WINDOW = 600.0  # drift repaired more than DRIFT_FREE times in this window backs off
DRIFT_FREE = 3
DRIFT_KEPT = 16
ORPHAN_GRACE = 60.0  # seconds of acting before a lease state without SecretSync is orphaned

logger = logging.getLogger("secretsync.engine")

SyncKey = tuple[str, str]


@dataclasses.dataclass(kw_only=True, slots=True)
class SyncEntry:
    """One SecretSync as last observed, and its schedule. Slotted, with tuples rather
    than sets and lists: a process keeps tens of thousands (docs/benchmarks.md)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: SecretSyncSpec | None
    spec_error: str | None
    status: Status
    force: str | None
    adopt: bool = False  # may take over an ExternalSecret's Secret (writer.ADOPT_ANNOTATION)
    due: float | None = None
    failures: int = 0
    running: bool = False
    rerun: bool = False
    expected_hash: str | None = None
    last_read: tuple[str, ...] = ()  # remote keys read last time
    rollout_problems: dict[rollouts.Workload, str] = dataclasses.field(default_factory=dict)
    trigger: str | None = None  # what made it due, when not the timer (for the Event)
    served_by: tuple[str, int] | None = None  # (store, generation) of the last success
    drift: tuple[float, ...] = ()  # recent repairs, for backoff
    # Read the Secret rather than trust the watch's last word on it (secretcache.py): when
    # new, forced, changed, repaired, or the first round since this replica began acting.
    verify: bool = True
    repair_at: float | None = None  # a drift repair waiting for its backoff
    # (namespace, name), made once: the schedule's heap holds it too.
    key: SyncKey = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.namespace, self.name)


def parse_sync(body: Mapping[str, Any]) -> SyncEntry:
    meta = body.get("metadata", {})
    status = st.parse(body.get("status"))
    spec: SecretSyncSpec | None
    try:
        spec = parse_spec(body.get("spec") or {})
        spec.refresh_seconds  # noqa: B018 - validates the durations now, not at use
        spec.lease.grace_seconds  # noqa: B018
        error = None
    except (pydantic.ValidationError, ConfigError) as exc:
        spec, error = None, stores.first_error(exc)
    return SyncEntry(
        namespace=sys.intern(meta["namespace"]),
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        spec=spec,
        spec_error=error,
        status=status,
        force=(meta.get("annotations") or {}).get(FORCE_SYNC),
        adopt=(meta.get("annotations") or {}).get(ADOPT_ANNOTATION) == ADOPT_ESO,
        # What the Secret should hold, as last written: its ADDED event at start-up is
        # then not mistaken for drift.
        expected_hash=status.data_hash,
    )


class Engine:
    """Schedules and runs syncs; the handlers' one collaborator."""

    def __init__(
        self,
        *,
        kube: Kube,
        metrics: Metrics,
        audit: AuditLog,
        hmac_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kube = kube
        self.reporter = reporting.Reporter(kube)
        self._metrics = metrics
        self._hmac_key = hmac_key
        self._clock = clock
        self._started = clock()
        self._active = False
        # Sharding (sharding.py): the namespaces this replica serves, None for all of them,
        # and when each began to be served (a store's grace period starts then).
        self._scope: set[str] | None = None
        self._adopted: dict[str, float] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.secrets = secretcache.SecretCache()
        self.runner = Runner(
            kube=kube,
            metrics=metrics,
            audit=audit,
            hmac_key=hmac_key,
            expect=self._expect,
            known=self.secrets.get,
        )
        self.leases = LeaseKeeper(
            kube=kube,
            runner=self.runner,
            audit=audit,
            hmac_key=hmac_key,
            known=self.secrets.get,
            expect=self._expect,
            clock=clock,
        )
        self.stores = stores.Stores()
        self.rollouts = rollouts.Rollouts(
            kube=kube, metrics=metrics, key=hmac_key, feeds=self._feeds, report=self._rollout_report
        )
        self._syncs: dict[SyncKey, SyncEntry] = {}
        # Issuing SecretSyncs deleted whose leases are still to be revoked: their uids.
        self._orphans: dict[SyncKey, str] = {}
        self._heap: list[tuple[float, int, SyncKey]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._arrivals = 0  # new SecretSyncs seen: a burst of them is gathered (_gather)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self.events = EventSources(notify=self.notify, metrics=metrics)
        metrics.status_retries_pending.set_function(lambda: self.reporter.pending)
        for kind in (*self.sizes(), *self.runner.sizes()):
            metrics.tracked.labels(kind).set_function(functools.partial(self._size, kind))
        for provider in ("aws", "vault", "sops"):
            metrics.circuits_open.labels(provider).set_function(
                functools.partial(self.runner.circuits.open_count, provider)
            )

    # --- what the handlers tell the engine --------------------------------------------------

    def observe_sync(self, body: Mapping[str, Any]) -> None:
        """A SecretSync was added or changed (or re-listed after a watch restart)."""
        entry = parse_sync(body)
        if not self.in_scope(entry.namespace):
            return  # a watch of a namespace given up, still winding down
        old = self._syncs.get(entry.key)
        if old is None or old.uid != entry.uid:
            self._syncs[entry.key] = entry
            self._arrivals += 1
            self._due_now(entry)
            return
        changed = entry.generation != old.generation or entry.force != old.force
        old_force = old.force
        old.generation, old.spec, old.spec_error, old.force = (
            entry.generation,
            entry.spec,
            entry.spec_error,
            entry.force,
        )
        old.status = entry.status
        if changed:
            old.failures = 0
            old.verify = True
            if entry.force != old_force:
                old.trigger = old.trigger or "force-sync"
            listed = {
                (old.namespace, w.kind, w.name)
                for w in (old.spec.rollout.restart if old.spec else ())
            }
            old.rollout_problems = {w: p for w, p in old.rollout_problems.items() if w in listed}
            self._due_now(old)

    def _expect(self, job_id: str, data_hash: str) -> None:
        namespace, _, name = job_id.partition("/")
        sync = self._syncs.get((namespace, name))
        if sync is not None:
            sync.expected_hash = data_hash

    def forget_sync(self, namespace: str, name: str) -> None:
        entry = self._syncs.pop((namespace, name), None)
        self.reporter.forget("SecretSync", namespace, name)
        if entry is not None and entry.spec is not None and entry.spec.issued and self._active:
            self._orphans[(namespace, name)] = entry.uid
            self._spawn(self._retire(namespace, name, entry.uid))

    async def _retire(self, namespace: str, name: str, uid: str) -> None:
        """An issuing SecretSync went: revoke its leases (as its lease state says, through
        the store that issued them) and drop their state. While that fails (Vault
        unreachable), the sweep tries again."""
        try:
            done = await self.leases.retire(
                namespace, name, uid, store_of=self.stores.by_key, plan_of=self._plan_of
            )
        except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
            logger.error("revoking for %s/%s failed: %s", namespace, name, type(exc).__name__)
            done = False
        if done:
            self._orphans.pop((namespace, name), None)

    def _plan_of(self, store: stores.StoreEntry, namespace: str) -> LoginPlan | None:
        if store.spec is None:
            return None
        try:
            return plan_login(
                store.spec, store_namespace=store.namespace or None, sync_namespace=namespace
            )
        except ConfigError:
            return None

    def observe_store(self, kind: str, body: Mapping[str, Any]) -> None:
        """A store was added or changed: check it, and re-sync its SecretSyncs if it changed."""
        entry = stores.parse_store(kind, body)
        if entry.namespace and not self.in_scope(entry.namespace):
            return
        old = self.stores.get(entry.kind, entry.namespace, entry.name)
        if old is not None and old.generation == entry.generation and old.uid == entry.uid:
            # Our own status write echoing back: keep the entry (its tasks key on it).
            old.status = entry.status
            return
        self.stores.put(entry)
        if old is not None:
            self.runner.forget(old.key)  # sessions of the old spec
            old.recheck.set()  # its check task wakes up, sees it replaced, and ends
        if self._active:
            self._start_store(entry)
        # New or changed: its SecretSyncs sync now (those that found no store, or
        # synced through the old spec) rather than at their next retry or refresh.
        for sync in self._syncs.values():
            if sync.spec is not None and self._store_of(sync) is entry:
                self._due_now(sync)

    def forget_store(self, kind: str, namespace: str, name: str) -> None:
        old = self.stores.remove(kind, namespace, name)
        if old is not None:
            old.recheck.set()  # its check task wakes up, sees it gone, and ends
            self.events.drop(old.key)
            self.runner.drop_store(old.key)
            self.reporter.forget(kind, namespace, name)

    def notify(
        self, *, kind: str, namespace: str, name: str, keys: Sequence[str], source: str
    ) -> int | None:
        """A provider said these remote keys changed (an event or the webhook): make every
        SecretSync of the store that reads one of them due now. Returns how many were
        matched, or None if the store is unknown."""
        store = self.stores.get(kind, namespace, name)
        if store is None:
            return None
        changed = {n for key in keys for n in matching.names(key)}
        matched = 0
        for sync in self._syncs.values():
            if sync.spec is None or self._store_of(sync) is not store:
                continue
            if matching.reads(sync.spec, changed, sync.last_read):
                sync.trigger = source
                self._due_now(sync)
                matched += 1
        return matched

    def document_changed(self, kind: str, namespace: str, name: str) -> int:
        """A ConfigMap or Secret holding SOPS documents changed: make every SecretSync of
        its namespace that reads one of its keys through a sops store due now. Returns
        how many were."""
        matched = 0
        for sync in self._syncs.values():
            if sync.namespace != namespace or sync.spec is None:
                continue
            store = self._store_of(sync)
            if store is None or store.provider != "sops":
                continue
            if matching.reads_document(sync.spec, kind, name):
                sync.trigger = f"{kind} {name} changed"
                self._due_now(sync)
                matched += 1
        return matched

    def observe_secret(
        self, namespace: str, body: Mapping[str, Any] | None, name: str, *, listing: bool = False
    ) -> None:
        """A managed Secret changed or was deleted (or was listed, after a watch restart):
        remember what it holds (as a hash) and repair drift from its SecretSync."""
        if not self.in_scope(namespace):
            return
        if self.leases.observe_state(namespace, name, body):
            return  # the lease state of an issuing SecretSync (leases.py), not a target
        now = time.monotonic()
        if listing:
            # A watch per namespace (--namespace, sharding) lists only its namespace.
            self.secrets.listed(now, namespace if self._scoped_watches else None)
        state = secretcache.state_of(body, self._hmac_key, seen=now) if body is not None else None
        self.secrets.put(namespace, name, state)
        annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
        owner = annotations.get(OWNER_ANNOTATION)
        sync = self._syncs.get((namespace, owner)) if owner else None
        if sync is None:
            sync = next(
                (
                    s
                    for s in self._syncs.values()
                    if s.namespace == namespace
                    and s.spec
                    and (s.spec.target.name or s.name) == name
                ),
                None,
            )
        if sync is None or sync.spec is None or sync.spec.target.creation_policy == "Merge":
            return
        if state is None:
            if sync.expected_hash == DELETED:
                return  # we deleted it (deletionPolicy Delete)
        elif state.data_hash == sync.expected_hash:
            return
        self._repair(sync, name)

    def _repair(self, sync: SyncEntry, secret: str) -> None:
        """Repair drift now, unless another writer keeps changing the Secret: then back
        off, so that two controllers do not fight with a write each per event."""
        now = self._clock()
        recent = [t for t in sync.drift if now - t < DRIFT_WINDOW]
        sync.drift = (*recent[-DRIFT_KEPT:], now)
        sync.verify = True
        if len(sync.drift) <= DRIFT_FREE:
            logger.info(
                "Secret %s/%s drifted from SecretSync %s; repairing",
                sync.namespace,
                secret,
                sync.name,
            )
            self._due_now(sync)
            return
        delay = schedule.backoff(len(sync.drift) - DRIFT_FREE, 0.0)
        logger.warning(
            "Secret %s/%s keeps being changed by another writer; SecretSync %s repairs it "
            "again in %.0fs",
            sync.namespace,
            secret,
            sync.name,
            delay,
        )
        sync.repair_at = min(sync.repair_at or now + delay, now + delay)
        if not sync.running and (sync.due is None or sync.due > sync.repair_at):
            self._schedule(sync, sync.repair_at)

    # --- sharding ------------------------------------------------------------------------------

    _scoped_watches = False  # the watches are per namespace (--namespace, or sharding)

    def scope_to(self, namespaces: Iterable[str] | None, *, per_namespace_watches: bool) -> None:
        """Serve only these namespaces (None: every namespace)."""
        self._scope = None if namespaces is None else set(namespaces)
        self._scoped_watches = per_namespace_watches

    def in_scope(self, namespace: str) -> bool:
        return self._scope is None or namespace in self._scope

    def adopt(self, namespaces: Iterable[str]) -> None:
        """Begin to serve these namespaces: their watches start now and deliver what is
        in them; each new SecretSync syncs (reading its Secret) as at start-up."""
        now = self._clock()
        for namespace in namespaces:
            if self._scope is not None:
                self._scope.add(namespace)
            self._adopted[namespace] = now

    async def release(self, namespaces: Iterable[str]) -> None:
        """Stop serving these namespaces (another replica takes them over): events from
        them are ignored from now on, what was kept about them is dropped, and this
        returns once no write there is under way. The client's fence already refuses new
        writes; rounds still running finish without writing, and their outcomes find
        their SecretSyncs gone."""
        gone = set(namespaces)
        if self._scope is not None:
            self._scope -= gone
        for namespace in gone:
            self._adopted.pop(namespace, None)
        for key in [k for k in self._syncs if k[0] in gone]:
            del self._syncs[key]
        for store in [st_ for st_ in self.stores if st_.namespace in gone]:
            self.forget_store(store.kind, store.namespace, store.name)
        for namespace in gone:
            self.secrets.forget_namespace(namespace)
            self.leases.forget_namespace(namespace)
            self.reporter.forget_namespace(namespace)
        self._compact()
        await self._kube.drain(gone)

    # --- the loop ------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether this replica acts (standalone, or the active one of a peering group)."""
        return self._active

    async def start(self) -> None:
        """Act: run the schedule, check stores, read event queues. Every known SecretSync
        syncs now, since a replica that takes over cannot know what the last one did."""
        if self._active:
            return
        self._active = True
        self._started = self._clock()  # stores may still be arriving: STORE_GRACE anew
        self.reporter.start()
        self.secrets.clear()  # the watches re-list on resume; until then, read the Secrets
        self._loop_task = self._spawn(self._loop())
        self._spawn(self._sweep())
        for store in self.stores:
            self._start_store(store)
        for sync in self._syncs.values():
            sync.verify = True
            self._due_now(sync)
        logger.info("engine started: %d SecretSyncs, %d stores", len(self._syncs), len(self.stores))

    async def pause(self) -> None:
        """Stop acting (peering handed the work to another replica, or the operator stops):
        no provider call and no write after this returns. What was observed is kept, so
        that `start` can act on it at once."""
        was = self._active
        self._active = False
        await self.events.stop()
        await self.rollouts.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.reporter.stop()
        await self.runner.close()
        self.leases.clear()
        self._heap.clear()
        for sync in self._syncs.values():
            sync.running = sync.rerun = False
            sync.due = sync.repair_at = None
        if was:
            logger.info("engine paused")

    async def stop(self) -> None:
        """The operator is exiting."""
        await self.pause()

    def sizes(self) -> dict[str, int]:
        """How much the engine keeps, by kind (the `secretsync_tracked` metric)."""
        return {
            "secretsyncs": len(self._syncs),
            "secrets": len(self.secrets),
            "stores": len(self.stores),
            "schedule": len(self._heap),
            "tasks": len(self._tasks),
            "event_consumers": len(self.events.running()),
            "lease_states": len(self.leases),
        }

    def _size(self, kind: str) -> int:
        return {**self.sizes(), **self.runner.sizes()}.get(kind, 0)

    def problem(self) -> str | None:
        """Why an active engine cannot work, or None (readiness)."""
        if self._active and (self._loop_task is None or self._loop_task.done()):
            return "the engine's schedule is not running; see the operator log"
        return None

    async def _loop(self) -> None:
        """Run due syncs until paused."""
        while True:
            now = self._clock()
            due = self._pop_due(now)
            if due:
                self._dispatch(due)
                continue
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            else:
                await self._gather()

    async def _gather(self) -> None:
        """Let what becomes due together run together: a burst of events for BATCH_WINDOW;
        SecretSyncs still arriving (a `kubectl apply` of hundreds) for as long as they
        keep coming, up to GATHER_MAX, so that their first round reads each remote key
        once, not in many small rounds."""
        begun, seen = self._clock(), self._arrivals
        await asyncio.sleep(BATCH_WINDOW)
        while self._arrivals != seen and self._clock() - begun < GATHER_MAX:
            seen = self._arrivals
            await asyncio.sleep(GATHER_STEP)

    async def _sweep(self) -> None:
        """Drop what nothing uses any more: expired sessions, stale schedule entries."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.runner.sweep()
            self._compact()
            self.secrets.prune(time.monotonic())
            await self._sweep_leases()

    async def _sweep_leases(self) -> None:
        """Revoke the leases of issuing SecretSyncs deleted while Vault was unreachable,
        or while no replica was acting (their state Secrets remain, and say whose)."""
        for (namespace, name), uid in list(self._orphans.items()):
            await self._retire(namespace, name, uid)
        if self._clock() - self._started < ORPHAN_GRACE:
            return  # the SecretSyncs' first listing may still be arriving
        for (namespace, name), uid in list(self.leases.kept.items()):
            sync = self._syncs.get((namespace, name))
            if not self.in_scope(namespace):
                continue
            if sync is not None and sync.uid == uid:
                if sync.spec is None or sync.spec.issued:
                    continue
                # It reads values now (spec.data): what it was issued is used no more.
                await self._retire(namespace, name, uid)
                continue
            if self._clock() - self._adopted.get(namespace, self._started) < ORPHAN_GRACE:
                continue
            try:
                if await self._kube.secretsync_uid(namespace, name) == uid:
                    continue  # it exists: this replica has not seen it yet
            except KubeError:
                continue
            await self._retire(namespace, name, uid)

    def _start_store(self, store: stores.StoreEntry) -> None:
        self.events.sync_store(store, self.runner)
        self._spawn(self._store_checks(store))
        if store.spec is not None and store.spec.change_check_seconds > 0:
            self._spawn(self._change_checks(store, store.spec.change_check_seconds))

    def _pop_due(self, now: float) -> list[SyncEntry]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            entry = self._syncs.get(key)
            if entry is not None and entry.due == due and not entry.running:
                entry.due = None
                out.append(entry)
        return out

    def _schedule(self, entry: SyncEntry, at: float) -> None:
        entry.due = at
        heapq.heappush(self._heap, (at, next(self._seq), entry.key))
        if len(self._heap) > 2 * len(self._syncs) + 1024:
            self._compact()
        self._wake.set()

    def _compact(self) -> None:
        """Drop schedule entries of deleted or rescheduled SecretSyncs, which would
        otherwise stay in the heap until their time (an hour, for a 1h refresh)."""
        live = [
            item
            for item in self._heap
            if (entry := self._syncs.get(item[2])) is not None and entry.due == item[0]
        ]
        if len(live) < len(self._heap):
            heapq.heapify(live)
            self._heap = live

    def _due_now(self, entry: SyncEntry) -> None:
        if entry.running:
            entry.rerun = True
        else:
            self._schedule(entry, self._clock())

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.error("engine task %s failed: %s", task.get_name(), type(error).__name__)

    def _store_of(self, sync: SyncEntry) -> stores.StoreEntry | None:
        return self.stores.lookup(sync.spec.store_ref, sync.namespace) if sync.spec else None

    def _dispatch(self, due: list[SyncEntry]) -> None:
        groups: dict[tuple[str, LoginPlan], tuple[stores.StoreEntry, list[SyncEntry]]] = {}
        for sync in due:
            sync.running = True
            try:
                store, plan = self._resolve(sync)
            except _NotYetError:
                sync.running = False
                self._schedule(sync, self._clock() + 1.0)
                continue
            except _NotRunnableError as exc:
                self._spawn(self._complete(sync, exc.outcome, store=None))
                continue
            groups.setdefault((store.key, plan), (store, []))[1].append(sync)
        for (_, plan), (store, syncs) in groups.items():
            self._spawn(self._run_group(store, plan, syncs))

    def _resolve(self, sync: SyncEntry) -> tuple[stores.StoreEntry, LoginPlan]:
        if sync.spec is None:
            raise _NotRunnableError(_fail(Reason.INVALID_SPEC, sync.spec_error or "invalid spec"))
        ref = sync.spec.store_ref
        store = self._store_of(sync)
        began = max(self._started, self._adopted.get(sync.namespace, self._started))
        if store is None and self._clock() - began < STORE_GRACE:
            raise _NotYetError  # the stores' first listing may still be arriving
        if store is None:
            where = f" in namespace {sync.namespace}" if ref.kind == "SecretStore" else ""
            raise _NotRunnableError(
                _fail(
                    Reason.STORE_NOT_READY, f"{ref.kind} {ref.name!r} does not exist{where}", True
                )
            )
        if store.spec is None:
            raise _NotRunnableError(
                _fail(
                    Reason.STORE_NOT_READY,
                    f"{ref.kind} {ref.name!r} is invalid: {store.spec_error}",
                )
            )
        try:
            plan = plan_login(
                store.spec,
                store_namespace=store.namespace or None,
                sync_namespace=sync.namespace,
            )
        except ConfigError as exc:
            raise _NotRunnableError(failed(exc)) from None
        return store, plan

    async def _run_group(
        self, store: stores.StoreEntry, plan: LoginPlan, syncs: list[SyncEntry]
    ) -> None:
        async with self.runner.turn(store, plan), self._slots:
            runnable: list[SyncEntry] = []
            for sync in syncs:
                refusal = await self._namespace_refusal(store, sync)
                if refusal is not None:
                    await self._complete(sync, refusal, store=store)
                else:
                    runnable.append(sync)
            issuing = [s for s in runnable if s.spec is not None and s.spec.issued]
            for sync in issuing:
                await self._run_issuing(store, plan, sync)
            runnable = [s for s in runnable if s not in issuing]
            if not runnable:
                return
            jobs = [
                SyncJob(
                    namespace=s.namespace,
                    name=s.name,
                    uid=s.uid,
                    spec=s.spec,
                    may_delete=s.served_by == (store.key, store.generation),
                    first=s.served_by is None
                    and s.status.synced_versions is None
                    and s.trigger is None
                    and not s.force,
                    verify=s.verify,
                    adopt=s.adopt,
                )
                for s in runnable
                if s.spec is not None
            ]
            try:
                outcomes = await self.runner.run(store, plan, jobs)
            except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
                logger.error("sync round for %s failed: %s", store.key, type(exc).__name__)
                outcomes = {
                    j.id: _fail(
                        Reason.PROVIDER_UNAVAILABLE, "internal error; see operator log", True
                    )
                    for j in jobs
                }
            for sync in runnable:
                # A spec made invalid while the group waited has no outcome: retry it.
                outcome = outcomes.get(f"{sync.namespace}/{sync.name}") or _fail(
                    Reason.INVALID_SPEC, sync.spec_error or "the spec changed during the sync", True
                )
                await self._complete(sync, outcome, store=store)

    async def _run_issuing(
        self, store: stores.StoreEntry, plan: LoginPlan, sync: SyncEntry
    ) -> None:
        """A round of an issuing SecretSync (leases.py); one at a time per identity, as the
        reading rounds are."""
        assert sync.spec is not None
        job = LeaseJob(
            namespace=sync.namespace,
            name=sync.name,
            uid=sync.uid,
            spec=sync.spec,
            force=sync.force,
            verify=sync.verify,
        )
        try:
            outcome = await self.leases.run(store, plan, job)
        except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
            logger.error("lease round for %s failed: %s", job.id, type(exc).__name__)
            outcome = _fail(Reason.PROVIDER_UNAVAILABLE, "internal error; see operator log", True)
        await self._complete(sync, outcome, store=store)

    async def _namespace_refusal(self, store: stores.StoreEntry, sync: SyncEntry) -> Outcome | None:
        if store.kind != "ClusterSecretStore" or store.spec is None or not store.spec.conditions:
            return None
        labels = None
        if stores.needs_namespace_labels(store):
            try:
                labels = await self._kube.namespace_labels(sync.namespace)
            except KubeError as exc:
                return failed(exc)
        if stores.namespace_allowed(store, sync.namespace, labels):
            return None
        return _fail(
            Reason.NAMESPACE_NOT_ALLOWED,
            f"ClusterSecretStore {store.name!r} does not allow namespace {sync.namespace!r} "
            "(see its spec.conditions)",
        )

    # --- reporting --------------------------------------------------------------------------

    async def _complete(
        self, sync: SyncEntry, outcome: Outcome, *, store: stores.StoreEntry | None
    ) -> None:
        try:
            if self._syncs.get(sync.key) is not sync:
                return  # deleted or replaced while it ran
            self._metrics.syncs.labels(outcome.write if outcome.ok else outcome.reason).inc()
            if outcome.write != "unchanged":
                self._metrics.secret_writes.labels(outcome.write).inc()
            if outcome.ok:
                sync.last_read = tuple({key.split("@", 1)[0] for key in outcome.versions})
                if store is not None:
                    sync.served_by = (store.key, store.generation)
            if store is not None:
                _recheck_if_stale(store, outcome)
            reported = sync.status.data_hash
            await self._report(sync, outcome)
            # A first sync restarts nothing: pods could not have used the data yet. Then
            # the data hash on the status moving is what counts, not whether this round
            # wrote the Secret: after a crash between the Secret write and the status
            # write, the next round finds the Secret "unchanged" and must still restart.
            # A restart that failed before is tried again (it is idempotent).
            moved = outcome.ok and reported is not None and outcome.data_hash != reported
            if sync.spec is not None and (
                moved or outcome.write == "updated" or (outcome.ok and sync.rollout_problems)
            ):
                self.rollouts.changed(
                    (sync.namespace, w.kind, w.name) for w in sync.spec.rollout.restart
                )
        except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
            logger.error("reporting the sync of %s/%s failed: %s", *sync.key, type(exc).__name__)
        finally:
            sync.running = False
            if outcome.ok:
                sync.verify = False
            if not sync.rerun:  # a trigger that came during the round is the rerun's
                sync.trigger = None
            self._reschedule(sync, outcome, store)

    def _reschedule(
        self, sync: SyncEntry, outcome: Outcome, store: stores.StoreEntry | None
    ) -> None:
        if self._syncs.get(sync.key) is not sync:
            return
        now = self._clock()
        if sync.rerun:
            sync.rerun = False
            self._schedule(sync, now)
            return
        repair, sync.repair_at = sync.repair_at, None
        interval = sync.spec.refresh_seconds if sync.spec else 0.0
        at: float | None = None
        if outcome.ok:
            sync.failures = 0
            if interval > 0:
                at = schedule.next_refresh(now, interval, store.key if store else "")
            if outcome.next_at is not None:  # a lease to renew or revoke (leases.py)
                at = outcome.next_at if at is None else min(at, outcome.next_at)
        else:
            sync.failures += 1
            if outcome.retry and outcome.aligned and outcome.retry_after is not None:
                # The identity's circuit is open: come back with the others at its probe.
                at = now + outcome.retry_after
            elif outcome.retry:
                # A provider's Retry-After lengthens the backoff, never shortens it.
                at = now + max(
                    schedule.backoff(sync.failures, interval), outcome.retry_after or 0.0
                )
            elif interval > 0:
                at = now + interval
            if outcome.next_at is not None:
                at = outcome.next_at if at is None else min(at, max(outcome.next_at, now + 1.0))
        if repair is not None:  # drift met while it ran: repair at its backoff time
            at = repair if at is None else min(at, max(repair, now))
        if at is not None:
            self._schedule(sync, at)

    async def _report(self, sync: SyncEntry, outcome: Outcome) -> None:
        new = reporting.sync_status(sync.status, outcome, sync.generation)
        changed = outcome.write in reporting.CHANGES
        written = await self.reporter.status(
            kind="SecretSync",
            namespace=sync.namespace,
            name=sync.name,
            old=sync.status,
            new=new,
            force=changed,
        )
        if written is sync.status:
            return  # nothing new to say
        sync.status = written
        if changed:
            why = f" (triggered by {sync.trigger})" if sync.trigger else ""
            verb = reporting.CHANGES[outcome.write]
            await self._event(sync, "Normal", verb, outcome.message + why)
        elif not outcome.ok:
            await self._event(sync, "Warning", outcome.reason, outcome.message)

    def _listing(self, workload: rollouts.Workload) -> list[SyncEntry]:
        namespace, kind, name = workload
        return [
            s
            for s in self._syncs.values()
            if s.namespace == namespace
            and s.spec is not None
            and any((w.kind, w.name) == (kind, name) for w in s.spec.rollout.restart)
        ]

    def _feeds(self, workload: rollouts.Workload) -> list[tuple[str, str]]:
        # The hash the status holds: written after the Secret was, never one that failed.
        return [(s.name, s.status.data_hash) for s in self._listing(workload) if s.status.data_hash]

    async def _rollout_report(
        self, workload: rollouts.Workload, problem: str | None, restarted: bool
    ) -> None:
        _, kind, name = workload
        for sync in self._listing(workload):
            if problem is None:
                sync.rollout_problems.pop(workload, None)
            else:
                sync.rollout_problems[workload] = problem
            if restarted:
                await self._event(sync, "Normal", "RolloutRestarted", f"restarted {kind} {name}")
            await self._write_rollout_condition(sync)

    async def _write_rollout_condition(self, sync: SyncEntry) -> None:
        new = reporting.rollout_status(
            sync.status, sorted(sync.rollout_problems.values()), sync.generation
        )
        sync.status = await self.reporter.status(
            kind="SecretSync", namespace=sync.namespace, name=sync.name, old=sync.status, new=new
        )

    async def _event(self, sync: SyncEntry, type_: str, reason: str, message: str) -> None:
        await self.reporter.event(
            namespace=sync.namespace,
            name=sync.name,
            uid=sync.uid,
            type_=type_,
            reason=reason,
            message=message,
        )

    async def _change_checks(self, store: stores.StoreEntry, interval: float) -> None:
        """Every changeCheckInterval, until the store changes or goes away."""
        while True:
            await asyncio.sleep(interval)
            if self.stores.current(store) is not store:
                return
            try:
                await self._change_check(store)
            except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
                logger.error("change check of %s failed: %s", store.key, type(exc).__name__)

    async def _change_check(self, store: stores.StoreEntry) -> None:
        groups: dict[LoginPlan, list[SyncEntry]] = {}
        for sync in self._syncs.values():
            ready = sync.status.ready()
            if (
                sync.spec is None
                or sync.running
                or sync.spec.refresh_seconds == 0
                or ready is None
                or ready.reason != Reason.SYNCED
                or self._store_of(sync) is not store
            ):
                continue
            try:
                _, plan = self._resolve(sync)
            except _NotRunnableError:
                continue
            groups.setdefault(plan, []).append(sync)
        for plan, syncs in groups.items():
            refs = sorted(
                {r for s in syncs if s.spec for r in changes.watched_refs(s.spec)},
                key=lambda r: r.key,
            )
            if not refs:
                continue
            try:
                async with self.runner.lease(store, plan) as (client, _):
                    current = dict(await client.versions(refs))
            except SecretSyncError as exc:
                self._metrics.change_checks.labels("failed").inc()
                logger.info("change check of %s failed: %s", store.key, exc)
                continue
            for sync in syncs:
                if sync.spec and changes.moved(
                    changes.watched_refs(sync.spec), sync.status.synced_versions, current
                ):
                    self._metrics.change_checks.labels("changed").inc()
                    sync.trigger = "change check"
                    self._due_now(sync)
                else:
                    self._metrics.change_checks.labels("unchanged").inc()

    async def _store_checks(self, store: stores.StoreEntry) -> None:
        """A store's Ready, checked now, again with backoff while it is not Ready (a
        backend that was down at start recovers by itself), and when a sync round gives
        reason to (store.recheck), until the store changes or goes away."""
        failures = 0
        while self.stores.current(store) is store:
            store.recheck.clear()  # a reason to check again from here on is kept
            try:
                outcome = await self._store_outcome(store)
            except Exception as exc:  # noqa: BLE001 - the type only: no traceback may quote values
                logger.error("checking %s failed: %s", store.key, type(exc).__name__)
                outcome = _fail(Reason.PROVIDER_UNAVAILABLE, "internal error; see the operator log")
            if self.stores.current(store) is not store:
                return
            store.status = await self.reporter.status(
                kind=store.kind,
                namespace=store.namespace,
                name=store.name,
                old=store.status,
                new=reporting.store_status(store.status, outcome, store.generation),
            )
            if outcome.ok:
                failures, delay = 0, STORE_RECHECK
            else:
                failures += 1
                delay = outcome.retry_after or schedule.backoff(failures, 0.0)
            if self.stores.current(store) is not store:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.recheck.wait(), delay)

    async def _store_outcome(self, store: stores.StoreEntry) -> Outcome:
        if store.spec is None:
            return _fail(Reason.INVALID_SPEC, store.spec_error or "invalid spec")
        per_namespace = store.kind == "ClusterSecretStore" and _depends_on_namespace(store)
        if per_namespace:
            return Outcome(
                ok=True,
                reason=Reason.VALID,
                message="spec is valid; each namespace authenticates as itself when it syncs",
            )
        try:
            plan = plan_login(
                store.spec, store_namespace=store.namespace or None, sync_namespace=""
            )
            async with self.runner.lease(store, plan) as (client, session):
                await client.validate()
        except SecretSyncError as exc:
            return failed(exc, context=f"authentication check of {store.kind} {store.name}")
        return Outcome(ok=True, reason=Reason.VALID, message=f"authenticated as {session.identity}")


class _NotYetError(Exception):
    """Too early to tell: retry shortly without reporting anything."""


class _NotRunnableError(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _fail(reason: str, message: str, retry: bool = False) -> Outcome:
    return Outcome(ok=False, reason=reason, message=message, retry=retry)


def _recheck_if_stale(store: stores.StoreEntry, outcome: Outcome) -> None:
    """Check the store again now when a round through it contradicts its Ready: a success
    while it is not Ready, or a failure of the session or the service while it is."""
    ready = store.status.ready()
    if ready is None:
        return
    session_failed = outcome.reason in (Reason.AUTH_FAILED, Reason.PROVIDER_UNAVAILABLE)
    if (outcome.ok and ready.status != "True") or (session_failed and ready.status == "True"):
        store.recheck.set()


def _depends_on_namespace(store: stores.StoreEntry) -> bool:
    """Whether a ClusterSecretStore's identity resolves in each SecretSync's namespace."""
    if store.spec is None:
        return False
    probe_a = plan_login(store.spec, store_namespace=None, sync_namespace="a")
    probe_b = plan_login(store.spec, store_namespace=None, sync_namespace="b")
    return probe_a.describe() != probe_b.describe()
