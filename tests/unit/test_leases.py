"""The lease keeper's decisions, on a fake Vault with a fake clock: when it renews, when
a max TTL makes it issue anew with an overlap, what a refused renewal or a failed
Secret write does, and what deletion revokes. The real thing is in
tests/integration/test_vault_leases.py (OpenBao and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any, cast

import pytest

from secretsync.audit import AuditLog
from secretsync.auth.plan import plan_login
from secretsync.engine import leasestate
from secretsync.engine.leases import LeaseJob, LeaseKeeper
from secretsync.engine.runner import Runner
from secretsync.engine.stores import StoreEntry, parse_store
from secretsync.errors import (
    AccessDeniedError,
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
    ProviderError,
)
from secretsync.kube import Kube, SecretObject
from secretsync.metrics import Metrics
from secretsync.models.remote import CallGate
from secretsync.models.sync import Certificate, Dynamic, parse_spec
from secretsync.providers.base import Backend, Issued, LoginMaterial, Session


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Lease:
    token: str
    ends: float
    max_end: float
    revoked: bool = False


class FakeVault:
    """Leases with a TTL and a max TTL; tokens that take their leases with them."""

    def __init__(self, clock: Clock, *, ttl: float, max_ttl: float) -> None:
        self.clock, self.ttl, self.max_ttl = clock, ttl, max_ttl
        self.leases: dict[str, Lease] = {}
        self.tokens: dict[str, bool] = {}  # token -> alive
        self.refuse_renewal = False
        self.down = False
        self._ids = itertools.count(1)

    def alive(self) -> list[str]:
        now = self.clock()
        return [i for i, lease in self.leases.items() if not lease.revoked and lease.ends > now]


class FakeIssuer:
    def __init__(self, vault: FakeVault, token: str) -> None:
        self.vault, self.token = vault, token

    def _check(self) -> None:
        if self.vault.down:
            from secretsync.errors import ProviderUnavailableError

            raise ProviderUnavailableError("vault: down")
        if not self.vault.tokens.get(self.token):
            raise AccessDeniedError("vault: permission denied")

    async def issue(self, request: Dynamic | Certificate) -> Issued:
        self._check()
        now = self.vault.clock()
        lease_id = f"database/creds/app/{next(self.vault._ids)}"
        self.vault.leases[lease_id] = Lease(
            self.token, now + self.vault.ttl, now + self.vault.max_ttl
        )
        return Issued(
            data={"username": lease_id.encode(), "password": b"pw-" + lease_id.encode()},
            lease_id=lease_id,
            lease_seconds=int(self.vault.ttl),
            renewable=True,
        )

    async def renew(self, lease_id: str, increment: int) -> int:
        self._check()
        if self.vault.refuse_renewal:
            raise ProviderError("vault: lease not found")
        lease = self.vault.leases[lease_id]
        now = self.vault.clock()
        lease.ends = min(now + increment, lease.max_end)
        return int(lease.ends - now)

    async def renew_token(self, increment: int) -> int:
        self._check()
        return 0  # a token that never expires

    async def revoke_token(self) -> None:
        self._check()
        self.vault.tokens[self.token] = False
        for lease in self.vault.leases.values():
            if lease.token == self.token:
                lease.revoked = True

    async def revoke_lease(self, lease_id: str) -> None:
        self._check()
        self.vault.leases[lease_id].revoked = True

    async def revoke_certificate(self, mount: str, serial: str) -> None:
        self._check()

    async def close(self) -> None:
        pass


class FakeBackend:
    name = "vault"
    endpoint = "vault:fake"
    owns_login_tokens = True

    def __init__(self, vault: FakeVault) -> None:
        self.vault = vault
        self._tokens = itertools.count(1)

    async def login(self, material: LoginMaterial) -> Session:
        token = f"t{next(self._tokens)}"
        self.vault.tokens[token] = True
        return Session(identity="vault:test", expires_at=None, credentials=token)

    def client(self, session: Session, gate: CallGate) -> Any:
        return _NoClient()

    def issuer(self, session: Session, gate: CallGate) -> FakeIssuer:
        return FakeIssuer(self.vault, str(session.credentials))

    def token_of(self, session: Session) -> str:
        return str(session.credentials)

    def resume(self, token: str, like: Session) -> Session:
        return Session(identity=like.identity, expires_at=None, credentials=token)


class _NoClient:
    async def close(self) -> None:
        pass


class FakeKube:
    """Secrets in memory; `fail_writes` makes writes of the target fail."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], SecretObject] = {}
        self.fail_target_writes = False
        self._versions = itertools.count(1)

    async def get_secret(self, namespace: str, name: str) -> SecretObject | None:
        return self.secrets.get((namespace, name))

    async def token_request(self, **_: Any) -> tuple[str, float]:
        return "jwt", 2e9

    def _put(self, namespace: str, name: str, **fields: Any) -> str:
        if self.fail_target_writes and not name.startswith(leasestate.STATE_PREFIX):
            raise KubeError("write refused")
        old = self.secrets.get((namespace, name))
        base = dataclasses.asdict(old) if old else {"owner_uids": (), "immutable": False}
        base.update(namespace=namespace, name=name, resource_version=str(next(self._versions)))
        base.update(fields)
        self.secrets[(namespace, name)] = SecretObject(**base)
        return str(base["resource_version"])

    async def create_secret(self, *, namespace: str, name: str, type_: str, **kw: Any) -> str:
        return self._put(
            namespace,
            name,
            type=type_,
            data=dict(kw["data"]),
            labels=dict(kw["labels"]),
            annotations=dict(kw["annotations"]),
            owner_uids=(kw["owner"].uid,) if kw["owner"] else (),
        )

    async def patch_secret(self, *, namespace: str, name: str, **kw: Any) -> str:
        old = self.secrets[(namespace, name)]
        if kw["resource_version"] != old.resource_version:
            raise KubeConflictError("409")
        data = {**old.data, **{k: v for k, v in kw["data"].items() if v is not None}}
        return self._put(namespace, name, data=data, labels=dict(kw["labels"]))

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop((namespace, name), None)


STORE = {
    "metadata": {"name": "vault", "namespace": "team", "uid": "s", "generation": 1},
    "spec": {
        "provider": {
            "vault": {
                "server": "http://vault.invalid",
                "path": "secret",
                "auth": {"kubernetes": {"role": "team", "serviceAccount": {"name": "sync"}}},
            }
        }
    },
}


class World:
    def __init__(self, *, ttl: float = 30, max_ttl: float = 3600, **lease: Any) -> None:
        self.clock = Clock()
        self.vault = FakeVault(self.clock, ttl=ttl, max_ttl=max_ttl)
        self.kube = FakeKube()
        backend = FakeBackend(self.vault)
        self.runner = Runner(
            kube=cast(Kube, self.kube),
            metrics=Metrics(),
            audit=AuditLog(),
            hmac_key=b"k" * 32,
            backend_for=lambda spec: cast(Backend, backend),
        )
        self.store: StoreEntry = parse_store("SecretStore", STORE)
        assert self.store.spec is not None
        self.plan = plan_login(self.store.spec, store_namespace="team", sync_namespace="team")
        self.keeper = self.new_keeper()
        spec: dict[str, Any] = {
            "storeRef": {"name": "vault"},
            "dynamic": {"path": "database/creds/app"},
        }
        if lease:
            spec["lease"] = lease
        self.job = LeaseJob(namespace="team", name="db", uid="u1", spec=parse_spec(spec))

    def new_keeper(self) -> LeaseKeeper:
        """A keeper as a restarted operator has one: nothing in memory."""
        return LeaseKeeper(
            kube=cast(Kube, self.kube),
            runner=self.runner,
            audit=AuditLog(),
            hmac_key=b"k" * 32,
            known=lambda namespace, name: None,
            expect=lambda job, data_hash: None,
            clock=self.clock,
        )

    def round(self, job: LeaseJob | None = None) -> Any:
        return asyncio.run(self.keeper.run(self.store, self.plan, job or self.job))

    def secret(self) -> Mapping[str, bytes]:
        return self.kube.secrets[("team", "db")].data

    def run_until(self, end: float) -> list[Any]:
        """Rounds at the times the outcomes ask for, until `end` seconds from now."""
        stop = self.clock.now + end
        outcomes = []
        while True:
            outcome = self.round()
            outcomes.append(outcome)
            assert outcome.ok, outcome.message
            if outcome.next_at is None or outcome.next_at > stop:
                return outcomes
            self.clock.now = max(outcome.next_at, self.clock.now + 0.001)


def test_a_lease_is_renewed_at_its_percent_and_never_issued_twice() -> None:
    w = World(ttl=30)
    first = w.round()
    assert first.ok
    assert first.write == "created"
    assert first.next_at == pytest.approx(w.clock.now + 20)  # 67 % of 30 s
    data = dict(w.secret())
    w.clock.now = first.next_at
    second = w.round()
    assert second.write == "unchanged"
    assert second.lease is not None
    assert second.lease.renewals == 1
    assert w.vault.alive() == ["database/creds/app/1"]
    assert w.secret() == data


def test_a_capped_renewal_issues_anew_with_an_overlap_then_revokes_the_old_lease() -> None:
    w = World(ttl=30, max_ttl=70, revokeGracePeriod="5s")
    outcomes = w.run_until(100)
    # Issued at 0; renewed at 20 (to 50) and at 40 (capped at 70); act at 70 - 10 = 60:
    # issued anew, the old revoked at 65, 5 s before its end.
    writes = [o.write for o in outcomes]
    assert writes.count("updated") >= 1
    assert w.vault.leases["database/creds/app/1"].revoked
    assert w.vault.alive()[-1] == "database/creds/app/2"
    reissue = next(o for o in outcomes if o.write == "updated")
    assert reissue.lease.reissues == 1
    assert reissue.lease.renewals == 0


def test_a_refused_renewal_issues_anew() -> None:
    w = World(ttl=30, revokeGracePeriod="0")
    first = w.round()
    w.vault.refuse_renewal = True
    w.clock.now = first.next_at
    second = w.round()
    assert second.ok
    assert second.write == "updated"
    assert w.secret()["username"] == b"database/creds/app/2"


def test_a_restarted_keeper_continues_from_the_state_secret() -> None:
    w = World(ttl=30)
    first = w.round()
    w.keeper = w.new_keeper()
    again = w.round()
    assert again.ok
    assert again.write == "unchanged"
    assert list(w.vault.leases) == ["database/creds/app/1"], "a restart issued nothing"
    assert again.next_at == first.next_at


def test_a_lost_secret_write_revokes_the_new_lease_and_keeps_the_old() -> None:
    w = World(ttl=30, max_ttl=30)  # not renewable past 30 s: issued anew at 20 s
    first = w.round()
    w.kube.fail_target_writes = True
    w.clock.now = first.next_at
    failed = w.round()
    assert not failed.ok
    assert w.secret()["username"] == b"database/creds/app/1"
    w.kube.fail_target_writes = False
    w.clock.now += 1
    w.round()
    assert w.vault.leases["database/creds/app/2"].revoked, "the unwritten lease is revoked"
    assert w.secret()["username"] == b"database/creds/app/3"


def test_vault_down_keeps_the_credentials_and_retries_before_they_end() -> None:
    w = World(ttl=40)
    first = w.round()
    w.vault.down = True
    w.clock.now = first.next_at
    failed = w.round()
    assert not failed.ok
    assert failed.reason == "ProviderUnavailable"
    assert "which expire at" in failed.message
    assert failed.next_at is not None
    assert failed.next_at < first.next_at + 14


@pytest.mark.parametrize("revoke", [True, False])
def test_deletion_revokes_and_drops_the_state_and_respects_revoke_on_delete(revoke: bool) -> None:
    w = World(ttl=30, revokeOnDelete=revoke)
    w.round()
    done = asyncio.run(
        w.keeper.retire(
            "team",
            "db",
            "u1",
            store_of=lambda key: w.store,
            plan_of=lambda store, namespace: w.plan,
        )
    )
    assert done
    assert w.vault.leases["database/creds/app/1"].revoked is revoke
    assert ("team", leasestate.state_name("db")) not in w.kube.secrets


def test_a_new_secretsync_of_the_same_name_retires_the_old_ones_leases() -> None:
    w = World(ttl=30)
    w.round()
    newer = dataclasses.replace(w.job, uid="u2")
    outcome = w.round(newer)
    assert outcome.ok
    assert w.vault.leases["database/creds/app/1"].revoked
    assert w.vault.alive() == ["database/creds/app/2"]


def test_state_round_trip_and_names() -> None:
    held = leasestate.Held(
        lease_id="l",
        token="t",
        own_token=True,
        issued_at=1.0,
        renewed_at=2.0,
        ends_at=30.0,
        period=30.0,
        renewable=True,
        keys=("a", "b"),
    )
    state = leasestate.LeaseState(
        sync_uid="u",
        store="s",
        current=held,
        retiring=[leasestate.Retiring(held=held, revoke_at=5)],
    )
    back = leasestate.parse(state.to_json(), resource_version="7")
    assert back.current == held
    assert back.retiring[0].held == held
    assert back.resource_version == "7"
    assert len(leasestate.state_name("x" * 253)) == 253
    assert held.act_at(67) == pytest.approx(30 - 9.9)
    capped = leasestate.renewal(held, now=20, granted=5, token_left=None)
    assert capped.capped
    assert not capped.can_renew()
    full = leasestate.renewal(held, now=20, granted=30, token_left=10)
    assert full.ends_at == 30
    assert full.capped, "a token ending first caps the lease"


def test_a_stale_replica_meets_a_conflict_and_then_reads_the_state_again() -> None:
    w = World(ttl=30)
    first = w.round()
    stale = w.keeper
    w.keeper = w.new_keeper()  # another replica acts meanwhile, and renews
    w.clock.now = first.next_at
    assert w.round().lease.renewals == 1
    w.keeper = stale  # the first one acts again, with what it remembered
    w.clock.now += 25  # past its own (stale) renewal time
    conflicted = w.round()
    assert not conflicted.ok, "a state write over another replica's must be refused"
    again = w.round()
    assert again.ok
    assert again.lease.renewals == 2, "it continued from the state the other replica kept"
    assert list(w.vault.leases) == ["database/creds/app/1"]


def test_a_template_that_does_not_fit_revokes_what_was_issued() -> None:
    w = World(ttl=30)
    spec = parse_spec(
        {
            "storeRef": {"name": "vault"},
            "dynamic": {"path": "database/creds/app"},
            "target": {"template": {"data": {"url": "{{ user }}:{{ password }}"}}},
        }
    )
    outcome = w.round(dataclasses.replace(w.job, spec=spec))
    assert not outcome.ok
    assert outcome.reason == "InvalidSpec"
    assert w.vault.alive() == [], "the lease issued for an unusable template is revoked"


def test_deletion_with_the_identity_gone_for_good_drops_the_state_and_stops_trying() -> None:
    w = World(ttl=30)
    w.round()
    w.runner.identities.forget(w.store.key)  # no cached session: a TokenRequest is needed

    async def no_service_account(**_: Any) -> tuple[str, float]:
        raise KubeNotFoundError("ServiceAccount team/sync does not exist")

    w.kube.token_request = no_service_account  # type: ignore[method-assign]
    done = asyncio.run(
        w.keeper.retire(
            "team", "db", "u1", store_of=lambda key: w.store, plan_of=lambda s, n: w.plan
        )
    )
    assert done, "a namespace being deleted must not be retried for ever"
    assert ("team", leasestate.state_name("db")) not in w.kube.secrets


def test_a_store_that_cannot_issue_is_a_clear_spec_error() -> None:
    w = World(ttl=30)

    class ReadOnly:  # a backend that only reads (AWS)
        name = "aws"
        endpoint = "aws:fake"

    w.runner._backend_for = lambda spec: cast(Backend, ReadOnly())
    outcome = w.round()
    assert not outcome.ok
    assert outcome.reason == "InvalidSpec"
    assert "need a Vault store" in outcome.message
