"""A session renewed while a round still uses the old client: the old client is closed
only when that round is done with it (before, the renewal closed it under the round)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from secretsync.audit import AuditLog
from secretsync.auth.plan import LoginPlan
from secretsync.engine.runner import Runner
from secretsync.engine.stores import parse_store
from secretsync.errors import ProviderError
from secretsync.kube import Kube
from secretsync.metrics import Metrics
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.providers.base import Backend, LoginMaterial, Session

LIFETIME = 0.2  # seconds: the session is due for renewal almost at once


class FakeClient:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.closed = False

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        assert not self.closed, "a round used a closed client"
        return {}

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        return {}

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        return []

    async def validate(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class FakeBackend:
    name = "aws"
    endpoint = "aws:fake"

    def __init__(self) -> None:
        self.clients: list[FakeClient] = []

    async def login(self, material: LoginMaterial) -> Session:
        return Session(identity="role", expires_at=time.time() + LIFETIME, credentials=object())

    def client(self, session: Session, gate: CallGate) -> FakeClient:
        client = FakeClient(session)
        self.clients.append(client)
        return client


def test_a_renewed_session_leaves_the_client_of_a_running_round_open() -> None:
    async def main() -> None:
        backend = FakeBackend()
        runner = Runner(
            kube=cast(Kube, None),
            metrics=Metrics(),
            audit=AuditLog(),
            hmac_key=b"k" * 32,
            backend_for=lambda spec: cast(Backend, backend),
        )
        store = parse_store(
            "ClusterSecretStore",
            {
                "metadata": {"name": "shared", "uid": "u", "generation": 1},
                "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}},
            },
        )
        plan = LoginPlan(namespace="")  # ambient: no Kubernetes call to log in
        async with runner.lease(store, plan) as (first, _):
            await asyncio.sleep(LIFETIME)  # the session is due: the next lease renews it
            async with runner.lease(store, plan) as (second, _):
                assert second is not first
                assert not cast(Any, first).closed  # the first round still holds it
                await first.fetch([RemoteRef("k")])
            assert not cast(Any, second).closed  # current: kept for the next rounds
        assert cast(Any, first).closed  # retired, and its last round is done
        await runner.close()
        assert all(c.closed for c in backend.clients)

    asyncio.run(main())


def test_two_rounds_that_meet_a_renewal_together_share_one_new_client() -> None:
    async def main() -> None:
        backend = FakeBackend()
        runner = Runner(
            kube=cast(Kube, None),
            metrics=Metrics(),
            audit=AuditLog(),
            hmac_key=b"k" * 32,
            backend_for=lambda spec: cast(Backend, backend),
        )
        store = parse_store(
            "ClusterSecretStore",
            {
                "metadata": {"name": "shared", "uid": "u", "generation": 1},
                "spec": {"provider": {"aws": {"service": "SecretsManager", "region": "eu-west-1"}}},
            },
        )
        plan = LoginPlan(namespace="")
        async with runner.lease(store, plan):
            pass
        await asyncio.sleep(LIFETIME)  # due for renewal

        async def round_() -> None:
            async with runner.lease(store, plan) as (client, _):
                await client.fetch([RemoteRef("k")])
                await asyncio.sleep(0.01)

        await asyncio.gather(round_(), round_())
        await runner.close()
        closes = [c.closed for c in backend.clients]
        assert all(closes), "a client was never closed"
        assert len(backend.clients) <= 3  # the first, and at most one per renewal

    asyncio.run(main())
