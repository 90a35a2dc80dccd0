"""Issued credentials (spec.dynamic, spec.certificate): issue, renew, re-issue with an
overlap, revoke; the state kept in a Secret so that nothing is issued twice.

A round for an issuing SecretSync (`LeaseKeeper.run`):
1. revoke the retired leases whose grace period is over;
2. issue anew when there is nothing held, the spec changed, a force-sync asked for
   it, the credential ended, the target Secret lost it, or it can be renewed no more;
3. otherwise renew when due (leasestate.Held.act_at), the lease and, if it would end
   first, the token that issued it;
4. keep the state (before the target Secret is written: a lease is never lost), then
   write the Secret, and retire the replaced lease after spec.lease.revokeGracePeriod.

Each issue logs in afresh, and the lease is kept with that login's token: Vault
revokes a token's leases when the token ends, so a lease must not hang on the
operator's shared session (VSO #436). The token is renewed with its lease and revoked
with it (auth/token/revoke-self, in Vault's default policy).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from secretsync.audit import AuditLog, ReadRecord
from secretsync.auth.plan import LoginPlan
from secretsync.engine import hashing, leasestate, render, values, writer
from secretsync.engine.leasestate import Held, LeaseState, Retiring
from secretsync.engine.outcomes import Outcome, audit_outcome, failed
from secretsync.engine.runner import Runner
from secretsync.engine.secretcache import SecretState
from secretsync.engine.stores import StoreEntry
from secretsync.errors import (
    AccessDeniedError,
    ConfigError,
    KubeConflictError,
    KubeError,
    KubeForbiddenError,
    KubeNotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailableError,
    SecretSyncError,
)
from secretsync.kube import Kube
from secretsync.models.remote import CallGate
from secretsync.models.status import LeaseStatus, Reason
from secretsync.models.sync import SecretSyncSpec
from secretsync.providers.base import IssuingBackend, Session

logger = logging.getLogger("secretsync.engine")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeaseJob:
    """A due issuing SecretSync."""

    namespace: str
    name: str
    uid: str
    spec: SecretSyncSpec
    force: str | None = None
    verify: bool = True

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _passing(error: SecretSyncError) -> bool:
    """Whether a failure may pass by itself (the service or the apiserver unreachable),
    rather than last (the identity or its ServiceAccount gone, access refused)."""
    if isinstance(error, KubeNotFoundError | KubeForbiddenError):
        return False
    return isinstance(error, ProviderUnavailableError | KubeError)


def _gone(error: ProviderError) -> bool:
    """A revocation that failed because there is nothing left to revoke: the token
    expired or was revoked (Vault answers 403), so its leases are gone with it."""
    return isinstance(error, AccessDeniedError | ProviderAuthError)


class LeaseKeeper:
    """Keeps the leases of every issuing SecretSync of this replica."""

    def __init__(
        self,
        *,
        kube: Kube,
        runner: Runner,
        audit: AuditLog,
        hmac_key: bytes,
        known: Callable[[str, str], SecretState | None],
        expect: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kube = kube
        self._runner = runner
        self._audit = audit
        self._hmac_key = hmac_key
        self._known = known
        self._expect = expect
        self._clock = clock
        self._states: dict[tuple[str, str], LeaseState] = {}
        # State Secrets the watch showed: (namespace, SecretSync name) -> its uid, for
        # finding those whose SecretSync went while no replica was looking.
        self.kept: dict[tuple[str, str], str] = {}

    # --- what the watch says of state Secrets -----------------------------------------

    def observe_state(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> bool:
        """Remember a state Secret the managed-Secret watch delivered; False if `name` is
        no state Secret."""
        meta = (body or {}).get("metadata") or {}
        owner = (meta.get("annotations") or {}).get(leasestate.STATE_ANNOTATION)
        if body is not None and owner is None:
            return False
        if body is None:
            if not name.startswith(leasestate.STATE_PREFIX):
                return False
            for key in [k for k in self.kept if k[0] == namespace]:
                if leasestate.state_name(key[1]) == name:
                    del self.kept[key]
            return True
        labels = meta.get("labels") or {}
        self.kept[(namespace, str(owner))] = str(labels.get(leasestate.UID_LABEL, ""))
        return True

    def clear(self) -> None:
        """Forget every state held in memory: another replica may act on them while this
        one stands by, so they are read again when it acts."""
        self._states.clear()

    def forget_namespace(self, namespace: str) -> None:
        for key in [k for k in self._states if k[0] == namespace]:
            del self._states[key]
        for key in [k for k in self.kept if k[0] == namespace]:
            del self.kept[key]

    def __len__(self) -> int:
        return len(self._states)

    # --- a round ----------------------------------------------------------------------

    async def run(self, store: StoreEntry, plan: LoginPlan, job: LeaseJob) -> Outcome:
        """Issue, renew or revoke as due; every failure is an outcome."""
        state: LeaseState | None = None
        try:
            backend = self._runner.backend(store)
            if not isinstance(backend, IssuingBackend):
                raise ConfigError(
                    f"spec.dynamic and spec.certificate need a Vault store; {store.kind} "
                    f"{store.name} is not one"
                )
            state = await self._load(job.namespace, job.name)
            async with self._runner.lease(store, plan) as (_, session):
                state, written = await self._round(store, plan, backend, session, job, state)
        except SecretSyncError as exc:
            # Read the state again next round: a write of it may have failed half-way (a
            # 409 from another writer, the fence), so memory may not be what is kept.
            self._states.pop((job.namespace, job.name), None)
            return self._failure(exc, state)
        return self._success(store, job, state, written)

    async def _round(
        self,
        store: StoreEntry,
        plan: LoginPlan,
        backend: IssuingBackend,
        session: Session,
        job: LeaseJob,
        state: LeaseState | None,
    ) -> tuple[LeaseState, writer.WriteOutcome]:
        now = self._clock()
        if state is None or state.sync_uid != job.uid:
            old = state
            state = LeaseState(
                sync_uid=job.uid,
                store=store.key,
                resource_version=old.resource_version if old else "",
            )
            if old is not None:  # a SecretSync of the same name before this one
                held = ([old.current] if old.current else []) + [r.held for r in old.retiring]
                state.retiring = [Retiring(held=h, revoke_at=now) for h in held]
        # Calls that keep credentials alive may probe an open circuit early (Circuits.enter).
        left = state.current.ends_at - now if state.current else None
        gate = self._runner.gate(store, plan, must_go_within=left)
        changed = await self._revoke_due(backend, session, gate, state, now)
        pct = job.spec.lease.renew_percent
        fingerprint = leasestate.request_fingerprint(job.spec, store.key)
        current = state.current
        why: str | None = None
        if current is None:
            why = "first issue"
        elif current.request != fingerprint:
            why = "the spec changed"
        elif job.force and job.force != state.forced:
            why = "force-sync"
        elif current.ends_at <= now:
            why = "the credentials expired"
        elif not await self._holds(job, current):
            why = "the target Secret does not hold the credentials"
        elif now >= current.act_at(pct):
            if current.can_renew():
                try:
                    state.current = current = await self._renew(backend, session, gate, current)
                    changed = True
                except ProviderError as exc:
                    if isinstance(exc, ProviderUnavailableError):
                        raise
                    logger.info("renewal for %s refused (%s); issuing anew", job.id, exc)
                    why = "the renewal was refused"
                if why is None and now >= current.act_at(pct):
                    why = "the max TTL is near"
            else:
                why = "it cannot be renewed"
        if why is not None:
            state.forced = job.force
            written = await self._issue(
                store, plan, backend, session, gate, job, state, fingerprint, why
            )
            return state, written
        if changed:
            await self._save(job, state)
        return state, "unchanged"

    async def _issue(
        self,
        store: StoreEntry,
        plan: LoginPlan,
        backend: IssuingBackend,
        shared: Session,
        gate: CallGate,
        job: LeaseJob,
        state: LeaseState,
        fingerprint: str,
        why: str,
    ) -> writer.WriteOutcome:
        spec = job.spec
        request = spec.dynamic or spec.certificate
        assert request is not None
        await self._still_current(job, state)
        own = backend.owns_login_tokens
        session = await self._runner.fresh_session(store, plan) if own else shared
        issuer = backend.issuer(session, gate)
        if spec.certificate is not None:
            where = f"{spec.certificate.mount}/issue/{spec.certificate.role}"
        else:
            where = spec.dynamic.path if spec.dynamic else ""
        now = self._clock()
        try:
            try:
                issued = await issuer.issue(request)
            except ProviderError as exc:
                self._record(job, store, session, where, exc)
                if own:
                    await self._quietly(issuer.revoke_token())
                raise
            self._record(job, store, session, where, None)
            ends = issued.not_after or now + issued.lease_seconds
            token_ends = session.expires_at if own else None
            if own and token_ends is not None and token_ends < ends and issued.lease_id:
                # The login's token would end first, and take the lease with it.
                token_ends = now + await issuer.renew_token(int(ends - now))
            if own and not issued.lease_id:
                # A certificate without a lease needs its token no more.
                await self._quietly(issuer.revoke_token())
            elif token_ends is not None:
                ends = min(ends, token_ends)
        finally:
            await issuer.close()
        period = max(issued.lease_seconds, 1)
        held = Held(
            lease_id=issued.lease_id,
            token=backend.token_of(session) if own and issued.lease_id else "",
            own_token=own,
            issued_at=now,
            renewed_at=now,
            ends_at=ends,
            period=float(period),
            renewable=issued.renewable,
            capped=ends - now < period - leasestate.CAP_TOLERANCE,
            request=fingerprint,
            serial=issued.serial,
            mount=spec.certificate.mount if spec.certificate else None,
        )
        try:
            data = dict(issued.data)
            if spec.target.template is not None and spec.target.template.data:
                data = render.render(spec.target.template.data, data)
            values.check_size(data)
        except SecretSyncError:
            # A template that does not fit what was issued: nobody can use it.
            await self._revoke(backend, shared, gate, held, certificate=False)
            raise
        held.data_hash = hashing.data_hash(self._hmac_key, data)
        held.keys = tuple(sorted(data))
        old = state.current
        state.current = held
        if old is not None:
            state.reissues += 1
            if old.lease_id:
                grace = spec.lease.grace_seconds
                state.retiring.append(Retiring(held=old, revoke_at=min(now + grace, old.ends_at)))
        logger.info("issued credentials for %s (%s)", job.id, why)
        # The state first: a lease that was issued is never forgotten, whatever fails next.
        try:
            await self._save(job, state)
        except SecretSyncError:
            # Kept nowhere, it could never be revoked later: revoke it now.
            await self._revoke(backend, shared, gate, held, certificate=False)
            raise
        target = writer.SyncTarget(
            namespace=job.namespace, name=job.name, uid=job.uid, target=spec.effective_target
        )
        self._expect(job.id, held.data_hash)
        try:
            return await writer.write(self._kube, target, data, held.data_hash)
        except SecretSyncError:
            # Nobody can use what was not written: revoke it now, keep the old one.
            state.current = old
            if old is not None:
                state.reissues -= 1
                state.retiring = [r for r in state.retiring if r.held is not old]
            state.retiring.append(Retiring(held=held, revoke_at=now))
            with contextlib.suppress(SecretSyncError):
                await self._save(job, state)
            raise

    async def _renew(
        self, backend: IssuingBackend, shared: Session, gate: CallGate, held: Held
    ) -> Held:
        session = backend.resume(held.token, shared) if held.own_token else shared
        issuer = backend.issuer(session, gate)
        try:
            now = self._clock()
            granted = await issuer.renew(held.lease_id, int(held.period))
            token_left: float | None = None
            if held.own_token:
                # Renewed each time, so that the token outlives the lease it carries.
                token_left = await issuer.renew_token(int(held.period)) or None
        finally:
            await issuer.close()
        return leasestate.renewal(held, now=now, granted=granted, token_left=token_left)

    async def _revoke_due(
        self,
        backend: IssuingBackend,
        shared: Session,
        gate: CallGate,
        state: LeaseState,
        now: float,
    ) -> bool:
        due = [r for r in state.retiring if r.revoke_at <= now]
        for retiring in due:
            if await self._revoke(backend, shared, gate, retiring.held, certificate=False):
                state.retiring.remove(retiring)
        return bool(due)

    async def _revoke(
        self,
        backend: IssuingBackend,
        shared: Session,
        gate: CallGate,
        held: Held,
        *,
        certificate: bool,
    ) -> bool:
        """Revoke what is held; True when done (or nothing is left to revoke), False when
        Vault could not be reached (try again later)."""
        try:
            if held.lease_id and held.own_token and held.token:
                issuer = backend.issuer(backend.resume(held.token, shared), gate)
                try:
                    await issuer.revoke_token()
                finally:
                    await issuer.close()
            elif held.lease_id and self._clock() < held.ends_at:
                issuer = backend.issuer(shared, gate)
                try:
                    await issuer.revoke_lease(held.lease_id)
                finally:
                    await issuer.close()
            if certificate and held.serial and held.mount and self._clock() < held.ends_at:
                issuer = backend.issuer(shared, gate)
                try:
                    await issuer.revoke_certificate(held.mount, held.serial)
                finally:
                    await issuer.close()
        except ProviderUnavailableError:
            return False
        except ProviderError as exc:
            # A token that is gone took its leases with it; anything else is worth a word
            # (a policy without sys/leases/revoke or <mount>/revoke, for instance).
            if not (held.own_token and _gone(exc)):
                logger.warning("could not revoke a lease or certificate: %s", exc)
        return True

    async def _quietly(self, call: Any) -> None:
        try:
            await call
        except ProviderError as exc:
            logger.info("revoking an unused token failed: %s", exc)

    # --- deletion -----------------------------------------------------------------------

    async def retire(
        self,
        namespace: str,
        name: str,
        uid: str,
        *,
        store_of: Callable[[str], StoreEntry | None],
        plan_of: Callable[[StoreEntry, str], LoginPlan | None],
    ) -> bool:
        """SecretSync namespace/name (of this uid) is gone: revoke what it held, through
        the store that issued it, unless its spec said revokeOnDelete: false; then drop
        its state. False when something is left to do later (Vault unreachable)."""
        try:
            state = await self._load(namespace, name)
        except SecretSyncError as exc:
            logger.warning("cannot read the lease state of %s/%s: %s", namespace, name, exc)
            if _passing(exc):
                return False
            self.kept.pop((namespace, name), None)  # unreadable: left for a person to see
            return True
        if state is not None and state.sync_uid != uid:
            return True  # a newer SecretSync of the same name holds it now
        held = []
        if state is not None and state.revoke_on_delete:
            held = ([state.current] if state.current else []) + [r.held for r in state.retiring]
        store = store_of(state.store) if state is not None else None
        plan = plan_of(store, namespace) if store is not None else None
        if held and (store is None or plan is None):
            logger.warning(
                "the store that issued the leases of %s/%s is gone: they end at their TTL",
                namespace,
                name,
            )
        elif held and store is not None and plan is not None:
            backend = self._runner.backend(store)
            if isinstance(backend, IssuingBackend):
                try:
                    async with self._runner.lease(store, plan) as (_, session):
                        gate = self._runner.gate(store, plan)
                        for one in held:
                            current = state is not None and one is state.current
                            if not await self._revoke(
                                backend, session, gate, one, certificate=current
                            ):
                                return False
                except SecretSyncError as exc:
                    if _passing(exc):
                        logger.warning(
                            "cannot revoke the leases of %s/%s yet: %s", namespace, name, exc
                        )
                        return False
                    # The identity is gone for good (its namespace is being deleted, say):
                    # nobody can revoke them now, and they end at their TTL.
                    logger.warning(
                        "cannot revoke the leases of %s/%s: %s; they end at their TTL",
                        namespace,
                        name,
                        exc,
                    )
                else:
                    logger.info("revoked the leases of deleted SecretSync %s/%s", namespace, name)
        try:
            await self._kube.delete_secret(namespace, leasestate.state_name(name))
        except KubeError as exc:
            logger.warning("cannot delete the lease state of %s/%s: %s", namespace, name, exc)
            return False
        self._states.pop((namespace, name), None)
        self.kept.pop((namespace, name), None)
        return True

    # --- the state Secret ---------------------------------------------------------------

    async def _load(self, namespace: str, name: str) -> LeaseState | None:
        cached = self._states.get((namespace, name))
        if cached is not None:
            return cached
        secret = await self._kube.get_secret(namespace, leasestate.state_name(name))
        if secret is None or leasestate.STATE_KEY not in secret.data:
            return None
        try:
            state = leasestate.parse(
                secret.data[leasestate.STATE_KEY], resource_version=secret.resource_version
            )
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"Secret {namespace}/{leasestate.state_name(name)} holds no readable lease "
                "state; delete it to let the operator issue anew (its leases then end at "
                "their TTL)"
            ) from None
        self._states[(namespace, name)] = state
        return state

    async def _save(self, job: LeaseJob, state: LeaseState) -> None:
        name = leasestate.state_name(job.name)
        labels = {writer.MANAGED_BY[0]: writer.MANAGED_BY[1], leasestate.UID_LABEL: job.uid}
        annotations = {leasestate.STATE_ANNOTATION: job.name}
        state.revoke_on_delete = job.spec.lease.revoke_on_delete
        data = {leasestate.STATE_KEY: state.to_json()}
        if not state.resource_version:
            existing = await self._kube.get_secret(job.namespace, name)
            if existing is not None:
                state.resource_version = existing.resource_version
        if state.resource_version:
            state.resource_version = await self._kube.patch_secret(
                namespace=job.namespace,
                name=name,
                data=data,
                labels=labels,
                annotations=annotations,
                resource_version=state.resource_version,
                owner=None,
            )
        else:
            state.resource_version = await self._kube.create_secret(
                namespace=job.namespace,
                name=name,
                type_=leasestate.STATE_TYPE,
                data=data,
                labels=labels,
                annotations=annotations,
                owner=None,
                immutable=False,
            )
        self._states[(job.namespace, job.name)] = state

    async def _still_current(self, job: LeaseJob, state: LeaseState) -> None:
        """Before issuing: has another replica changed the kept state since this one read
        it (after a hand-over)? Then read it again rather than issue on a stale view."""
        secret = await self._kube.get_secret(job.namespace, leasestate.state_name(job.name))
        kept = secret.resource_version if secret is not None else ""
        if kept != state.resource_version:
            raise KubeConflictError(
                f"the lease state of SecretSync {job.id} changed meanwhile; reading it again"
            )

    async def _holds(self, job: LeaseJob, held: Held) -> bool:
        """Whether the target Secret still holds the credentials: they are kept nowhere
        else, so a Secret deleted or overwritten needs new ones."""
        target = job.spec.effective_target
        secret_name = target.name or job.name
        known = (
            None
            if job.verify or target.creation_policy == "Merge"
            else self._known(job.namespace, secret_name)
        )
        if known is not None:
            return known.data_hash == held.data_hash
        secret = await self._kube.get_secret(job.namespace, secret_name)
        if secret is None:
            return False
        ours = {k: secret.data[k] for k in held.keys if k in secret.data}
        return (
            len(ours) == len(held.keys)
            and hashing.data_hash(self._hmac_key, ours) == held.data_hash
        )

    # --- reporting ----------------------------------------------------------------------

    def _record(
        self,
        job: LeaseJob,
        store: StoreEntry,
        session: Session,
        where: str,
        error: ProviderError | None,
    ) -> None:
        self._audit.read(
            ReadRecord(
                secretsync=job.id,
                store=store.key,
                identity=session.identity,
                remote_key=where,
                version=None,
                outcome=audit_outcome(error),
            )
        )

    def _success(
        self, store: StoreEntry, job: LeaseJob, state: LeaseState, written: writer.WriteOutcome
    ) -> Outcome:
        held = state.current
        assert held is not None
        pct = job.spec.lease.renew_percent
        act = held.act_at(pct)
        what = "renews" if held.can_renew() else "issues new ones"
        target = job.spec.target.name or job.name
        return Outcome(
            ok=True,
            reason=Reason.SYNCED,
            message=f"Secret {target} holds {len(held.keys)} keys issued by {store.kind} "
            f"{store.name}; they expire at {_when(held.ends_at)}, and the operator {what} "
            f"at {_when(act)}",
            write=written,
            data_hash=held.data_hash,
            next_at=state.next_action(pct),
            lease=self._lease_status(state, pct),
        )

    def _lease_status(self, state: LeaseState, pct: int) -> LeaseStatus | None:
        held = state.current
        if held is None:
            return None
        return LeaseStatus(
            expires_at=_when(held.ends_at),
            next_renewal_at=_when(held.act_at(pct)),
            renewals=held.renewals,
            reissues=state.reissues,
        )

    def _failure(self, error: SecretSyncError, state: LeaseState | None) -> Outcome:
        base = failed(error)
        held = state.current if state else None
        if held is None:
            return base
        now = self._clock()
        left = "expired" if held.ends_at <= now else "expire"
        return dataclasses.replace(
            base,
            message=f"{base.message}; the Secret keeps the credentials issued before, which "
            f"{left} at {_when(held.ends_at)}",
            # Retried well before they end, whatever the backoff says: a renewal that comes
            # after the end is a new issue, and every workload restarts for it.
            next_at=now + max((held.ends_at - now) / 4, 1.0),
        )
