"""EventSources: one consumer per store with a queue, restarted on a new generation, stopped
when the store goes; whose identity reads the queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, cast

from secretsync.auth.plan import LoginPlan
from secretsync.engine import eventsources
from secretsync.engine.runner import Runner
from secretsync.engine.stores import StoreEntry, parse_store
from secretsync.metrics import Metrics
from secretsync.models.remote import CallObserver
from secretsync.providers.base import EventQueue, QueueMessage, Session

ACCOUNT = "123456789012"
QUEUE = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/secretsync-events"


def store(
    *,
    kind: str = "SecretStore",
    generation: int = 1,
    queue: str | None = QUEUE,
    auth: dict[str, Any] | None = None,
) -> StoreEntry:
    spec: dict[str, Any] = {
        "provider": {
            "aws": {
                "service": "SecretsManager",
                "region": "eu-west-1",
                "role": f"arn:aws:iam::{ACCOUNT}:role/reader",
                "auth": {"serviceAccount": {"name": "sync"}} if auth is None else auth,
            }
        }
    }
    if queue is not None:
        spec["events"] = {"sqs": {"queueUrl": queue}}
    meta = {"name": "aws", "uid": "u1", "generation": generation}
    if kind == "SecretStore":
        meta["namespace"] = "team-a"
    return parse_store(kind, {"metadata": meta, "spec": spec})


def rotation(secret_id: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "e",
            "detail-type": "AWS Service Event via CloudTrail",
            "source": "aws.secretsmanager",
            "account": ACCOUNT,
            "time": "2024-01-01T00:00:00Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": {
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": "RotationSucceeded",
                "additionalEventData": {"SecretId": secret_id},
            },
        }
    )


class FakeQueue:
    def __init__(self, session: Session, pending: list[QueueMessage], done: asyncio.Event) -> None:
        self.session = session
        self.pending = pending
        self.done = done
        self.deleted: list[str] = []

    async def receive(self, *, wait_seconds: int) -> Sequence[QueueMessage]:
        if self.pending:
            batch, self.pending[:] = list(self.pending), []
            return batch
        await asyncio.sleep(0.01)
        return []

    async def delete(self, messages: Sequence[QueueMessage]) -> None:
        self.deleted.extend(m.id for m in messages)
        self.done.set()


class FakeBackend:
    name = "aws"

    def __init__(self) -> None:
        self.pending: list[QueueMessage] = []
        self.queues: list[FakeQueue] = []
        self.deleted = asyncio.Event()

    def event_queue(self, session: Session, queue_url: str, observe: CallObserver) -> EventQueue:
        queue = FakeQueue(session, self.pending, self.deleted)
        self.queues.append(queue)
        return queue


class FakeRunner:
    def __init__(self) -> None:
        self.backend_ = FakeBackend()
        self.plans: list[LoginPlan] = []
        self.session_ = Session(identity="role", expires_at=None, credentials=object())

    def backend(self, store: StoreEntry) -> FakeBackend:
        return self.backend_

    async def session(self, store: StoreEntry, plan: LoginPlan) -> Session:
        self.plans.append(plan)
        return self.session_

    def forget(self, store_key: str) -> None:
        pass


class Notified:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, *, kind: str, namespace: str, name: str, keys: Sequence[str], source: str
    ) -> int | None:
        self.calls.append(
            {"kind": kind, "namespace": namespace, "name": name, "keys": list(keys), "src": source}
        )
        return 1


def test_a_store_with_a_queue_gets_a_consumer_that_notifies_its_syncs() -> None:
    async def main() -> None:
        notify, runner = Notified(), FakeRunner()
        sources = eventsources.EventSources(notify=notify, metrics=Metrics(), wait_seconds=0)
        arn = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:team-a/db-AbC123"
        runner.backend_.pending.append(QueueMessage(id="m1", receipt="r1", body=rotation(arn)))
        sources.sync_store(store(), cast(Runner, runner))
        assert sources.running() == {"SecretStore/team-a/aws": QUEUE}
        await asyncio.wait_for(runner.backend_.deleted.wait(), timeout=2)
        assert runner.backend_.queues[0].deleted == ["m1"]
        assert notify.calls == [
            {
                "kind": "SecretStore",
                "namespace": "team-a",
                "name": "aws",
                "keys": [arn],
                "src": "sqs",
            }
        ]
        assert runner.plans[0] == LoginPlan(
            namespace="team-a", service_account="sync", audiences=("sts.amazonaws.com",)
        )
        await sources.stop()
        assert sources.running() == {}

    asyncio.run(main())


def test_a_new_generation_restarts_the_consumer_and_a_same_one_keeps_it() -> None:
    async def main() -> None:
        runner = FakeRunner()
        sources = eventsources.EventSources(notify=Notified(), metrics=Metrics(), wait_seconds=0)
        sources.sync_store(store(generation=1), cast(Runner, runner))
        first = sources._consumers["SecretStore/team-a/aws"].task
        sources.sync_store(store(generation=1), cast(Runner, runner))
        assert sources._consumers["SecretStore/team-a/aws"].task is first
        sources.sync_store(store(generation=2), cast(Runner, runner))
        second = sources._consumers["SecretStore/team-a/aws"].task
        assert second is not first
        await asyncio.sleep(0)
        assert first.cancelled() or first.done()
        sources.sync_store(store(generation=3, queue=None), cast(Runner, runner))
        assert sources.running() == {}
        await sources.stop()

    asyncio.run(main())


def test_dropping_a_store_stops_its_consumer() -> None:
    async def main() -> None:
        sources = eventsources.EventSources(notify=Notified(), metrics=Metrics(), wait_seconds=0)
        sources.sync_store(store(), cast(Runner, FakeRunner()))
        task = sources._consumers["SecretStore/team-a/aws"].task
        sources.drop("SecretStore/team-a/aws")
        sources.drop("SecretStore/team-a/unknown")
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert sources.running() == {}

    asyncio.run(main())


def test_a_store_that_cannot_name_an_identity_gets_no_consumer() -> None:
    async def main() -> None:
        sources = eventsources.EventSources(notify=Notified(), metrics=Metrics())
        # A SecretStore without auth may not use the operator's ambient identity.
        sources.sync_store(store(auth={}), cast(Runner, FakeRunner()))
        assert sources.running() == {}

    asyncio.run(main())


def test_a_cluster_store_whose_identity_is_per_namespace_reads_its_queue_as_the_operator() -> None:
    per_namespace = store(kind="ClusterSecretStore")
    assert eventsources._plan(per_namespace) == LoginPlan(namespace="")
    shared = store(
        kind="ClusterSecretStore",
        auth={
            "secretRef": {
                "accessKeyId": {"name": "aws", "key": "id", "namespace": "ops"},
                "secretAccessKey": {"name": "aws", "key": "secret", "namespace": "ops"},
            }
        },
    )
    plan = eventsources._plan(shared)
    assert plan.namespace == "ops"
    assert [s.namespace for s in plan.secrets] == ["ops", "ops"]
