"""One sync round for one identity: log in (cached), expand finds, fetch every remote
key the due SecretSyncs need in one de-duplicated batch, then build, render and write
each target Secret."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from secretsync.audit import AuditLog, ReadRecord
from secretsync.auth.identity import IdentityCache, IdentityKey
from secretsync.auth.plan import LoginPlan
from secretsync.engine import hashing, render, values, writer
from secretsync.engine.budget import Budget
from secretsync.engine.circuit import CircuitKey, Circuits
from secretsync.engine.keyedlocks import KeyedLocks
from secretsync.engine.login import login_material
from secretsync.engine.outcomes import Outcome, audit_outcome, failed
from secretsync.engine.recent import RecentValues
from secretsync.engine.secretcache import SecretState
from secretsync.engine.stores import StoreEntry
from secretsync.errors import (
    AccessDeniedError,
    ConfigError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
    SecretSyncError,
)
from secretsync.kube import Kube
from secretsync.metrics import Metrics
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.models.status import Reason
from secretsync.models.store import ProviderSpec
from secretsync.models.sync import SecretSyncSpec
from secretsync.providers import registry
from secretsync.providers.base import Backend, SecretsClient, Session

logger = logging.getLogger("secretsync.engine")

DELETED = "deleted"  # what expect() is told before the runner deletes a Secret


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyncJob:
    """A due SecretSync, as the runner needs it."""

    namespace: str
    name: str
    uid: str
    spec: SecretSyncSpec
    # deletionPolicy Delete may act only once this store, at its current generation, has
    # served this SecretSync: a mistyped region or path reads as "not found" everywhere.
    may_delete: bool = False
    # Never synced yet: it may use values another round read a moment ago (recent.py).
    first: bool = False
    # Read the target Secret rather than trust the watch's last word on it.
    verify: bool = True
    adopt: bool = False  # may take over an ExternalSecret's Secret (writer.ADOPT_ANNOTATION)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


Results = Mapping[RemoteRef, RemoteValue | ProviderError]
DROPPED_MEMORY = 600.0  # seconds a deleted store is remembered (rounds under way then)
# What a gate hears when a call is given up before it reached the provider.
_ABANDONED = ProviderError("the call was abandoned")


@dataclasses.dataclass(kw_only=True)
class _Client:
    """A SecretsClient of one session, and the rounds using it right now."""

    session: Session
    client: SecretsClient
    users: int = 0
    retired: bool = False  # replaced by a renewed session, or its store changed


class _Gate:
    """The CallGate of one client: the identity's circuit, then the store's budget; every
    call counted in the metrics."""

    def __init__(
        self,
        *,
        circuits: Circuits,
        key: CircuitKey,
        budget: Callable[[], Budget],
        metrics: Metrics,
        provider: str,
        must_go_within: float | None = None,
    ) -> None:
        self._circuits = circuits
        self._must_go_within = must_go_within
        self._key = key
        self._budget = budget
        self._metrics = metrics
        self._provider = provider

    async def enter(self, operation: str) -> None:
        try:
            await self._circuits.enter(self._key, must_go_within=self._must_go_within)
        except ProviderUnavailableError:
            self._metrics.provider_calls.labels(self._provider, operation, "refused").inc()
            raise
        try:
            await self._budget().acquire()
        except BaseException:
            self._circuits.record(self._key, _ABANDONED)  # frees a half-open probe
            raise

    def leave(self, operation: str, error: ProviderError | None) -> None:
        outcome = "success" if error is None else "error"
        self._metrics.provider_calls.labels(self._provider, operation, outcome).inc()
        self._circuits.record(self._key, error)


class Runner:
    """Turns due SecretSyncs of one identity into Secrets."""

    def __init__(
        self,
        *,
        kube: Kube,
        metrics: Metrics,
        audit: AuditLog,
        hmac_key: bytes,
        expect: Callable[[str, str], None] = lambda job, data_hash: None,
        backend_for: Callable[[ProviderSpec], Backend] = registry.backend_for,
        known: Callable[[str, str], SecretState | None] = lambda namespace, name: None,
    ) -> None:
        # expect(job id, hash) is called just before a Secret is written (or deleted, with
        # DELETED), so the watch event of our own write is not mistaken for drift.
        self._expect = expect
        self._backend_for = backend_for
        # known(namespace, name): what the managed-Secret watch last said of a Secret.
        self._known = known
        self._kube = kube
        self._metrics = metrics
        self._audit = audit
        self._hmac_key = hmac_key
        self.identities: IdentityCache[Session] = IdentityCache()
        self.circuits = Circuits()
        self.recent = RecentValues()
        self._rounds = KeyedLocks()  # one round at a time per identity
        self._clients: dict[IdentityKey, _Client] = {}
        self._backends: dict[str, tuple[int, Backend]] = {}
        self._budgets: dict[str, Budget] = {}
        # Stores forgotten (changed, refused) count up here; a login or a client made
        # across a forget is not kept. Deleted stores are remembered a while, for the
        # rounds still running when they went.
        self._epochs: dict[str, int] = {}
        self._dropped: dict[str, float] = {}

    # --- identities and clients -------------------------------------------------------

    def backend(self, store: StoreEntry) -> Backend:
        cached = self._backends.get(store.key)
        if cached is None or cached[0] != store.generation:
            if store.spec is None:
                raise ConfigError(f"{store.kind} {store.name} is invalid: {store.spec_error}")
            cached = (store.generation, self._backend_for(store.spec.provider))
            if store.key not in self._dropped:  # a round of a deleted store keeps nothing
                self._backends[store.key] = cached
        return cached[1]

    def _identity(self, store: StoreEntry, plan: LoginPlan) -> IdentityKey:
        return IdentityKey(
            store=store.key, generation=store.generation, identity=plan.session_key()
        )

    async def session(self, store: StoreEntry, plan: LoginPlan) -> Session:
        """The identity's session, logging in only when it is missing or due."""
        epoch = self._epochs.get(store.key, 0)
        session = await self.identities.session(
            self._identity(store, plan), functools.partial(self.fresh_session, store, plan)
        )
        if not self._current(store, epoch):
            # The store changed or went while this login ran: keep nothing of it.
            self.identities.forget(store.key)
        return session

    async def fresh_session(self, store: StoreEntry, plan: LoginPlan) -> Session:
        """A new login, cached nowhere: the session of `session`, and the one each issued
        lease is kept with (leases.py)."""
        backend = self.backend(store)
        circuit: CircuitKey = (backend.endpoint, plan.describe())
        # A login is a provider call like any other: throttled STS or Vault answers
        # open the identity's circuit too.
        await self.circuits.enter(circuit)
        try:
            session = await backend.login(await login_material(self._kube, plan))
        except ProviderError as exc:
            self.circuits.record(circuit, exc)
            self._metrics.logins.labels(backend.name, "error").inc()
            raise
        except BaseException:
            self.circuits.record(circuit, _ABANDONED)
            self._metrics.logins.labels(backend.name, "error").inc()
            raise
        self.circuits.record(circuit, None)
        self._metrics.logins.labels(backend.name, "success").inc()
        return session

    def _current(self, store: StoreEntry, epoch: int) -> bool:
        """Whether nothing of the store was forgotten since `epoch` was read."""
        return store.key not in self._dropped and self._epochs.get(store.key, 0) == epoch

    @contextlib.asynccontextmanager
    async def lease(
        self, store: StoreEntry, plan: LoginPlan
    ) -> AsyncIterator[tuple[SecretsClient, Session]]:
        """A client for the identity, for the length of one round. A client whose session
        was renewed meanwhile is closed only when its last round is done with it."""
        epoch = self._epochs.get(store.key, 0)
        session = await self.session(store, plan)
        key = self._identity(store, plan)
        held = self._clients.get(key)
        if held is None or held.session is not session:
            old, held = held, self._new_client(store, plan, session)
            if self._current(store, epoch):
                self._clients[key] = held  # in place before anything awaits: no twin
            else:
                held.retired = True  # the store changed or went: used once, then closed
            if old is not None and self._clients.get(key) is not old:
                await self._retire(old)
        held.users += 1
        try:
            yield held.client, session
        finally:
            held.users -= 1
            if held.retired and held.users == 0:
                await held.client.close()

    def _new_client(self, store: StoreEntry, plan: LoginPlan, session: Session) -> _Client:
        return _Client(
            session=session, client=self.backend(store).client(session, self.gate(store, plan))
        )

    def gate(
        self, store: StoreEntry, plan: LoginPlan, *, must_go_within: float | None = None
    ) -> CallGate:
        """What every provider call of the identity passes: its circuit, the store's
        budget, the call metrics (`must_go_within`: see Circuits.enter)."""
        backend = self.backend(store)
        return _Gate(
            circuits=self.circuits,
            key=(backend.endpoint, plan.describe()),
            budget=lambda: self.budget(store),
            metrics=self._metrics,
            provider=backend.name,
            must_go_within=must_go_within,
        )

    async def _retire(self, held: _Client) -> None:
        """Close the client now, or when its last round is done; only once."""
        if held.retired:
            return
        held.retired = True
        if held.users == 0:
            await held.client.close()

    def forget(self, store_key: str) -> None:
        """Drop sessions and clients of a store (changed, deleted, or its login was refused)."""
        self._epochs[store_key] = self._epochs.get(store_key, 0) + 1
        self.identities.forget(store_key)
        self.recent.forget(store_key)
        for key in [k for k in self._clients if k.store == store_key]:
            held = self._clients.pop(key)
            asyncio.get_running_loop().create_task(self._retire(held))

    def drop_store(self, store_key: str) -> None:
        """Forget everything kept for a store that is gone: sessions, clients, its
        backend and its budget."""
        self.forget(store_key)
        self._epochs.pop(store_key, None)
        self._dropped[store_key] = time.monotonic()
        self._backends.pop(store_key, None)
        self._budgets.pop(store_key, None)

    def sweep(self) -> None:
        """Drop sessions that expired unused and the clients made for them (per-namespace
        identities of a ClusterSecretStore come and go with the namespaces)."""
        for key in self.identities.sweep():
            held = self._clients.pop(key, None)
            if held is not None:
                asyncio.get_running_loop().create_task(self._retire(held))
        self.recent.expire()
        self.circuits.sweep()
        horizon = time.monotonic() - DROPPED_MEMORY
        for store_key in [k for k, at in self._dropped.items() if at < horizon]:
            del self._dropped[store_key]

    async def close(self) -> None:
        """Close every client and drop the values read lately (the engine is stopping or
        standing by)."""
        held, self._clients = list(self._clients.values()), {}
        for one in held:
            await self._retire(one)
        self.recent.clear()

    def sizes(self) -> dict[str, int]:
        """How much the runner keeps, by kind (the `secretsync_tracked` metric)."""
        return {
            "sessions": len(self.identities),
            "clients": len(self._clients),
            "backends": len(self._backends),
            "budgets": len(self._budgets),
            "circuits": len(self.circuits),
            "recent_values": len(self.recent),
            "dropped_stores": len(self._dropped),
        }

    def budget(self, store: StoreEntry) -> Budget:
        """The store's refreshBudget: every provider call of its syncs, change checks and
        store checks takes one token."""
        spec = store.spec
        rate, burst = (
            (spec.refresh_budget.calls_per_second, spec.refresh_budget.burst) if spec else (20, 40)
        )
        budget = self._budgets.get(store.key)
        if budget is None or (budget.rate, budget.burst) != (rate, float(burst)):
            budget = self._budgets[store.key] = Budget(rate, burst)
        return budget

    # --- a round --------------------------------------------------------------------------

    async def run(
        self, store: StoreEntry, plan: LoginPlan, jobs: Sequence[SyncJob]
    ) -> dict[str, Outcome]:
        """Sync the jobs; every job gets an outcome, whatever fails."""
        with self._metrics.sync_duration.time():
            try:
                identity = self._identity(store, plan)
                async with self.lease(store, plan) as (client, session):
                    outcomes = await self._round(store, client, session, jobs, identity)
            except SecretSyncError as exc:
                if isinstance(exc, ProviderAuthError):
                    self.forget(store.key)
                context = f"cannot log in as {plan.describe()} through {store.kind} {store.name}"
                outcomes = {job.id: failed(exc, context=context) for job in jobs}
        return self._align(outcomes, (self.backend(store).endpoint, plan.describe()))

    def turn(
        self, store: StoreEntry, plan: LoginPlan
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Rounds of one identity take turns (the engine holds this around `run`, before it
        takes one of its slots, so a slow identity waits for itself, not for slots): a
        round that starts while another reads finds its values in `recent`."""
        return self._rounds(self._identity(store, plan))

    def _align(self, outcomes: dict[str, Outcome], circuit: CircuitKey) -> dict[str, Outcome]:
        """While the identity's circuit is open, every failed SecretSync of the round waits
        exactly until its probe: they then come back together, as one round and one probe,
        rather than each on its own backoff."""
        wait = self.circuits.remaining(circuit)
        if wait is None:
            return outcomes
        return {
            job: dataclasses.replace(out, retry_after=wait, aligned=True) if out.retry else out
            for job, out in outcomes.items()
        }

    async def _round(
        self,
        store: StoreEntry,
        client: SecretsClient,
        session: Session,
        jobs: Sequence[SyncJob],
        identity: IdentityKey,
    ) -> dict[str, Outcome]:
        found: dict[str, dict[int, Sequence[RemoteRef]]] = {}
        find_errors: dict[str, SecretSyncError] = {}
        for job in jobs:
            try:
                found[job.id] = await self._finds(client, job)
            except SecretSyncError as exc:
                find_errors[job.id] = exc
        needs = {
            job.id: {
                *_direct_refs(job.spec),
                *(r for rs in found.get(job.id, {}).values() for r in rs),
            }
            for job in jobs
        }
        fresh = {ref for job in jobs if not job.first for ref in needs[job.id]}
        refs = {ref for wanted in needs.values() for ref in wanted}
        results: dict[RemoteRef, RemoteValue | ProviderError] = dict(
            self.recent.take(identity, refs - fresh)
        )
        try:
            missing = sorted(refs - results.keys(), key=lambda r: (r.key, r.version or ""))
            if missing:
                read = await client.fetch(missing)
                self.recent.keep(identity, read)
                results.update(read)
        except ProviderError as exc:
            if isinstance(exc, ProviderAuthError) and not isinstance(exc, AccessDeniedError):
                self.forget(store.key)
            return {job.id: failed(exc) for job in jobs}
        outcomes = await asyncio.gather(
            *(
                self._finish_safely(store, session, job, results, found.get(job.id, {}))
                if job.id not in find_errors
                else _failed_async(find_errors[job.id])
                for job in jobs
            )
        )
        return {job.id: out for job, out in zip(jobs, outcomes, strict=True)}

    async def _finds(self, client: SecretsClient, job: SyncJob) -> dict[int, Sequence[RemoteRef]]:
        out: dict[int, Sequence[RemoteRef]] = {}
        for i, item in enumerate(job.spec.data_from):
            if item.find is None:
                continue
            find = item.find
            out[i] = await client.find(
                FindQuery(
                    path=find.path,
                    name_regexp=find.name.regexp if find.name else None,
                    tags=tuple(sorted(find.tags.items())),
                )
            )
        return out

    async def _finish_safely(
        self,
        store: StoreEntry,
        session: Session,
        job: SyncJob,
        results: Results,
        found: Mapping[int, Sequence[RemoteRef]],
    ) -> Outcome:
        """_finish, with a bug in it costing this SecretSync's round, not its neighbours'."""
        try:
            return await self._finish(store, session, job, results, found)
        except Exception as exc:  # noqa: BLE001 - reported on the status; the type only
            logger.error("sync of %s failed unexpectedly: %s", job.id, type(exc).__name__)
            return Outcome(
                ok=False,
                reason=Reason.PROVIDER_UNAVAILABLE,
                message="internal error; see the operator log",
                retry=True,
            )

    async def _finish(
        self,
        store: StoreEntry,
        session: Session,
        job: SyncJob,
        results: Results,
        found: Mapping[int, Sequence[RemoteRef]],
    ) -> Outcome:
        spec = job.spec
        reads: list[tuple[RemoteRef, RemoteValue | ProviderError]] = []

        def get(ref: RemoteRef) -> RemoteValue | ProviderError:
            result = results.get(ref) or ProviderError(f"remote secret {ref.key!r} was not fetched")
            reads.append((ref, result))
            return result

        parts: list[tuple[str, dict[str, bytes]]] = []
        error: ProviderError | ConfigError | None = None
        try:
            for i, item in enumerate(spec.data):
                where = f"spec.data[{i}]"
                r = item.remote_ref
                got = get(RemoteRef(r.key, r.version))
                if isinstance(got, ProviderError):
                    error = error or got
                    continue
                parts.append(
                    (
                        where,
                        {item.secret_key: values.select(got, r.property, where=where, key=r.key)},
                    )
                )
            for i, df in enumerate(spec.data_from):
                where = f"spec.dataFrom[{i}]"
                if df.extract is not None:
                    e = df.extract
                    got = get(RemoteRef(e.key, e.version))
                    if isinstance(got, ProviderError):
                        error = error or got
                        continue
                    parts.append((where, values.extract(got, e.property, where=where, key=e.key)))
                for ref in found.get(i, ()):
                    got = get(ref)
                    if isinstance(got, ProviderError):
                        error = error or got
                        continue
                    parts.append((f"{where}.find", {values.key_for_found(ref.key): got.value}))
        except ConfigError as exc:
            error = error or exc
        finally:
            self._record_reads(store, session, job, reads)
        target = writer.SyncTarget(
            namespace=job.namespace, name=job.name, uid=job.uid, target=spec.target, adopt=job.adopt
        )
        if error is not None:
            gone = bool(reads) and all(isinstance(r, SecretNotFoundError) for _, r in reads)
            return await self._on_error(job, target, error, spec, all_gone=gone)
        try:
            data = values.merge(parts)
            if spec.target.template is not None and spec.target.template.data:
                data = render.render(spec.target.template.data, data)
            values.check_size(data)
            data_hash = hashing.data_hash(self._hmac_key, data)
            self._expect(job.id, data_hash)
            known = None if job.verify else self._known(target.namespace, target.secret_name)
            written = await writer.write(self._kube, target, data, data_hash, known=known)
        except SecretSyncError as exc:
            return failed(exc)
        versions = {
            ref.key if ref.version is None else f"{ref.key}@{ref.version}": value.version
            for ref, value in reads
            if isinstance(value, RemoteValue)
        }
        return Outcome(
            ok=True,
            reason=Reason.SYNCED,
            message=f"Secret {target.secret_name} holds {len(data)} keys from "
            f"{store.kind} {store.name}",
            write=written,
            versions=versions,
            data_hash=data_hash,
        )

    async def _on_error(
        self,
        job: SyncJob,
        target: writer.SyncTarget,
        error: SecretSyncError,
        spec: SecretSyncSpec,
        *,
        all_gone: bool,
    ) -> Outcome:
        # Only an explicit "not found" of every remote key, from a store that served this
        # SecretSync before, with deletionPolicy Delete, removes data; every other failure
        # leaves the last good Secret exactly as it is.
        if (
            isinstance(error, SecretNotFoundError)
            and spec.target.deletion_policy == "Delete"
            and all_gone
            and job.may_delete
        ):
            keys = set(spec.target.template.data if spec.target.template else ()) | {
                d.secret_key for d in spec.data
            }
            self._expect(job.id, DELETED)
            try:
                removed = await writer.remove(self._kube, target, keys)
            except SecretSyncError as exc:
                return failed(exc)
            base = failed(error)
            return dataclasses.replace(
                base,
                reason=Reason.DELETED,
                message=f"{base.message}; the synced data is removed (deletionPolicy Delete)",
                write=removed,
            )
        return failed(error)

    def _record_reads(
        self,
        store: StoreEntry,
        session: Session,
        job: SyncJob,
        reads: Sequence[tuple[RemoteRef, RemoteValue | ProviderError]],
    ) -> None:
        recorded: set[tuple[str, str | None]] = set()
        for ref, result in reads:
            version = result.version if isinstance(result, RemoteValue) else ref.version
            # Several properties of one remote secret are one read of it: one record.
            if (ref.key, version) in recorded:
                continue
            recorded.add((ref.key, version))
            error = result if isinstance(result, ProviderError) else None
            outcome = audit_outcome(error)
            self._audit.read(
                ReadRecord(
                    secretsync=job.id,
                    store=store.key,
                    identity=session.identity,
                    remote_key=ref.key,
                    version=version,
                    outcome=outcome,
                )
            )
            self._metrics.remote_reads.labels(store.provider, outcome).inc()


def _refs(job: SyncJob, found: Mapping[int, Sequence[RemoteRef]]) -> set[RemoteRef]:
    """Every remote ref a job reads: its data and extracts, and what its finds found."""
    return {*_direct_refs(job.spec), *(ref for refs in found.values() for ref in refs)}


def _direct_refs(spec: SecretSyncSpec) -> list[RemoteRef]:
    refs = [RemoteRef(d.remote_ref.key, d.remote_ref.version) for d in spec.data]
    refs += [RemoteRef(df.extract.key, df.extract.version) for df in spec.data_from if df.extract]
    return refs


async def _failed_async(error: SecretSyncError) -> Outcome:
    return failed(error)
