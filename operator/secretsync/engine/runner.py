"""One sync round for one identity: log in (cached), expand finds, fetch every remote
key the due SecretSyncs need in one de-duplicated batch, then build, render and write
each target Secret."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence

from secretsync.audit import AuditLog, ReadRecord
from secretsync.auth.identity import IdentityCache, IdentityKey
from secretsync.auth.plan import TOKEN_SECONDS, LoginPlan
from secretsync.engine import hashing, render, values, writer
from secretsync.engine.budget import Budget
from secretsync.engine.outcomes import Outcome, audit_outcome, failed
from secretsync.engine.stores import StoreEntry
from secretsync.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderError,
    SecretNotFoundError,
    SecretSyncError,
)
from secretsync.kube import Kube
from secretsync.metrics import Metrics
from secretsync.models.remote import FindQuery, RemoteRef, RemoteValue
from secretsync.models.status import Reason
from secretsync.models.sync import SecretSyncSpec
from secretsync.providers import registry
from secretsync.providers.base import Backend, LoginMaterial, SecretsClient, Session

logger = logging.getLogger("secretsync.engine")

BATCH_SIZE = 20  # Secrets Manager's BatchGetSecretValue; an estimate for the budget
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

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


Results = Mapping[RemoteRef, RemoteValue | ProviderError]


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
    ) -> None:
        # expect(job id, hash) is called just before a Secret is written (or deleted, with
        # DELETED), so the watch event of our own write is not mistaken for drift.
        self._expect = expect
        self._kube = kube
        self._metrics = metrics
        self._audit = audit
        self._hmac_key = hmac_key
        self.identities: IdentityCache[Session] = IdentityCache()
        self._clients: dict[IdentityKey, tuple[Session, SecretsClient]] = {}
        self._backends: dict[tuple[str, int], Backend] = {}
        self._budgets: dict[str, Budget] = {}

    # --- identities and clients -------------------------------------------------------

    def backend(self, store: StoreEntry) -> Backend:
        key = (store.key, store.generation)
        if key not in self._backends:
            if store.spec is None:
                raise ConfigError(f"{store.kind} {store.name} is invalid: {store.spec_error}")
            for old in [k for k in self._backends if k[0] == store.key]:
                del self._backends[old]
            self._backends[key] = registry.backend_for(store.spec.provider)
        return self._backends[key]

    async def client(self, store: StoreEntry, plan: LoginPlan) -> tuple[SecretsClient, Session]:
        """A client for the identity, logging in only when its session is missing or due."""
        backend = self.backend(store)
        key = IdentityKey(store=store.key, generation=store.generation, identity=plan.describe())

        async def login() -> Session:
            try:
                session = await backend.login(await self._material(plan))
            except Exception:
                self._metrics.logins.labels(backend.name, "error").inc()
                raise
            self._metrics.logins.labels(backend.name, "success").inc()
            return session

        session = await self.identities.session(key, login)
        cached = self._clients.get(key)
        if cached is not None and cached[0] is session:
            return cached[1], session
        if cached is not None:
            await cached[1].close()

        def observe(operation: str, outcome: str) -> None:
            self._metrics.provider_calls.labels(backend.name, operation, outcome).inc()

        client = backend.client(session, observe)
        self._clients[key] = (session, client)
        return client, session

    def forget(self, store_key: str) -> None:
        """Drop sessions and clients of a store (changed, deleted, or its login was refused)."""
        self.identities.forget(store_key)
        for key in [k for k in self._clients if k.store == store_key]:
            _, client = self._clients.pop(key)
            asyncio.get_running_loop().create_task(client.close())

    async def _material(self, plan: LoginPlan) -> LoginMaterial:
        token = None
        if plan.service_account:
            token, _ = await self._kube.token_request(
                namespace=plan.namespace,
                service_account=plan.service_account,
                audiences=plan.audiences,
                seconds=TOKEN_SECONDS,
            )
        secrets = {
            s.field: await self._kube.secret_value(s.namespace, s.name, s.key) for s in plan.secrets
        }
        ca_pem = None
        if plan.ca is not None:
            kind, loc = plan.ca
            if kind == "Secret":
                ca_pem = await self._kube.secret_value(loc.namespace, loc.name, loc.key)
            else:
                ca_pem = await self._kube.config_map_value(loc.namespace, loc.name, loc.key)
        return LoginMaterial(service_account_token=token, secrets=secrets, ca_pem=ca_pem)

    def budget(self, store: StoreEntry) -> Budget:
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
                client, session = await self.client(store, plan)
            except SecretSyncError as exc:
                if isinstance(exc, ProviderAuthError):
                    self.forget(store.key)
                context = f"cannot log in as {plan.describe()} through {store.kind} {store.name}"
                return {job.id: failed(exc, context=context) for job in jobs}
            budget = self.budget(store)
            found: dict[str, dict[int, Sequence[RemoteRef]]] = {}
            find_errors: dict[str, SecretSyncError] = {}
            for job in jobs:
                try:
                    found[job.id] = await self._finds(client, budget, job)
                except SecretSyncError as exc:
                    find_errors[job.id] = exc
            refs = {ref for job in jobs for ref in _direct_refs(job.spec)}
            refs.update(r for f in found.values() for rs in f.values() for r in rs)
            try:
                results: Results = {}
                if refs:
                    await budget.acquire(max(1, math.ceil(len(refs) / BATCH_SIZE)))
                    results = await client.fetch(
                        sorted(refs, key=lambda r: (r.key, r.version or ""))
                    )
            except ProviderError as exc:
                if isinstance(exc, ProviderAuthError):
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

    async def _finds(
        self, client: SecretsClient, budget: Budget, job: SyncJob
    ) -> dict[int, Sequence[RemoteRef]]:
        out: dict[int, Sequence[RemoteRef]] = {}
        for i, item in enumerate(job.spec.data_from):
            if item.find is None:
                continue
            find = item.find
            await budget.acquire()
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
            namespace=job.namespace, name=job.name, uid=job.uid, target=spec.target
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
            written = await writer.write(self._kube, target, data)
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
        for ref, result in reads:
            error = result if isinstance(result, ProviderError) else None
            outcome = audit_outcome(error)
            self._audit.read(
                ReadRecord(
                    secretsync=job.id,
                    store=store.key,
                    identity=session.identity,
                    remote_key=ref.key,
                    version=result.version if isinstance(result, RemoteValue) else ref.version,
                    outcome=outcome,
                )
            )
            self._metrics.remote_reads.labels(store.provider, outcome).inc()


def _direct_refs(spec: SecretSyncSpec) -> list[RemoteRef]:
    refs = [RemoteRef(d.remote_ref.key, d.remote_ref.version) for d in spec.data]
    refs += [RemoteRef(df.extract.key, df.extract.version) for df in spec.data_from if df.extract]
    return refs


async def _failed_async(error: SecretSyncError) -> Outcome:
    return failed(error)
