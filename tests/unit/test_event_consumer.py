"""The SQS consumer: one trigger per batch, deletion only after the trigger, discards deleted
and logged without content, queue errors backed off, never a crash."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import Callable, Sequence

import pytest

from secretsync.errors import ProviderUnavailableError
from secretsync.events import consumer
from secretsync.metrics import Metrics

ACCOUNT = "123456789012"
REGION = "eu-west-1"
SECRET_VALUE = "pw-9f8e7d-must-never-be-logged"


@dataclasses.dataclass(frozen=True)
class Message:
    id: str
    body: str


def event(secret_id: str, *, account: str = ACCOUNT) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "e1",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager",
            "account": account,
            "time": "2024-10-23T12:26:45Z",
            "region": REGION,
            "resources": [],
            "detail": {
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": "PutSecretValue",
                "requestParameters": {"secretId": secret_id, "secretString": SECRET_VALUE},
                "responseElements": None,
            },
        }
    )


class FakeQueue:
    """Hands out scripted batches (or raises scripted errors), records every call, and sets
    `stop` once the script is exhausted."""

    def __init__(self, script: list[Sequence[Message] | Exception], stop: asyncio.Event) -> None:
        self.script = list(script)
        self.stop = stop
        self.calls: list[tuple[str, list[str]]] = []

    async def receive(self, *, wait_seconds: int) -> Sequence[Message]:
        self.calls.append(("receive", []))
        if not self.script:
            self.stop.set()
            return []
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def delete(self, messages: Sequence[Message]) -> None:
        self.calls.append(("delete", [m.id for m in messages]))


def run(
    script: list[Sequence[Message] | Exception],
    on_keys: Callable[[list[str]], int | None],
    *,
    metrics: Metrics | None = None,
    sleeps: list[float] | None = None,
) -> FakeQueue:
    async def main() -> FakeQueue:
        stop = asyncio.Event()
        queue = FakeQueue(script, stop)

        async def sleep(seconds: float) -> None:
            if sleeps is not None:
                sleeps.append(seconds)

        await asyncio.wait_for(
            consumer.consume(
                queue,
                on_keys=on_keys,
                service="SecretsManager",
                account=ACCOUNT,
                region=REGION,
                metrics=metrics or Metrics(),
                logger=logging.getLogger("test.events"),
                name="SecretStore/team-a/aws",
                wait_seconds=0,
                stop=stop,
                sleep=sleep,
                rng=random.Random(7),  # noqa: S311 - seeded jitter in a test
            ),
            timeout=5,
        )
        return queue

    return asyncio.run(main())


def recorder(triggered: list[list[str]], matched: int = 1) -> Callable[[list[str]], int]:
    def on_keys(keys: list[str]) -> int:
        triggered.append(keys)
        return matched

    return on_keys


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return found or 0.0


def test_a_batch_is_one_trigger_with_every_key_then_one_delete() -> None:
    triggered: list[list[str]] = []
    order: list[str] = []

    def on_keys(keys: list[str]) -> int:
        triggered.append(keys)
        order.append("trigger")
        return 2

    batch = [
        Message("m1", event("team-a/db")),
        Message("m2", event("team-a/db")),
        Message("m3", event("team-a/api")),
    ]
    metrics = Metrics()
    queue = run([batch], on_keys, metrics=metrics)
    assert triggered == [["team-a/db", "team-a/api"]]
    deletes = [ids for op, ids in queue.calls if op == "delete"]
    assert deletes == [["m1", "m2", "m3"]]
    assert value(metrics, "secretsync_events_received_total", source="sqs") == 3
    assert value(metrics, "secretsync_events_matched_total", source="sqs") == 3


def test_messages_are_deleted_only_after_the_trigger_returned() -> None:
    seen_deletes_at_trigger: list[int] = []
    queue_ref: list[FakeQueue] = []

    def on_keys(keys: list[str]) -> int:
        # At trigger time no delete has happened yet.
        seen_deletes_at_trigger.append(sum(1 for op, _ in queue_ref[0].calls if op == "delete"))
        return 1

    async def main() -> None:
        stop = asyncio.Event()
        queue = FakeQueue([[Message("m1", event("team-a/db"))]], stop)
        queue_ref.append(queue)
        await consumer.consume(
            queue,
            on_keys=on_keys,
            service="SecretsManager",
            account=ACCOUNT,
            region=REGION,
            metrics=Metrics(),
            logger=logging.getLogger("test.events"),
            wait_seconds=0,
            stop=stop,
        )

    asyncio.run(main())
    assert seen_deletes_at_trigger == [0]
    assert [ids for op, ids in queue_ref[0].calls if op == "delete"] == [["m1"]]


def test_a_failing_trigger_leaves_the_messages_for_redelivery_and_the_loop_goes_on() -> None:
    calls = 0

    def on_keys(keys: list[str]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(SECRET_VALUE)
        return 1

    queue = run([[Message("m1", event("team-a/db"))], [Message("m2", event("team-a/db"))]], on_keys)
    assert [ids for op, ids in queue.calls if op == "delete"] == [["m2"]]


def test_malformed_and_foreign_messages_are_deleted_counted_and_logged_without_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    triggered: list[list[str]] = []
    metrics = Metrics()
    batch = [
        Message("bad-1", "{not json " + SECRET_VALUE),
        Message("foreign-1", event("team-a/db", account="210987654321")),
        Message("good-1", event("team-a/db")),
    ]
    with caplog.at_level(logging.DEBUG, logger="test.events"):
        queue = run([batch], recorder(triggered), metrics=metrics)
    assert triggered == [["team-a/db"]]
    assert [ids for op, ids in queue.calls if op == "delete"] == [["bad-1", "foreign-1", "good-1"]]
    assert (
        value(metrics, "secretsync_events_discarded_total", source="sqs", reason="malformed") == 1
    )
    assert (
        value(metrics, "secretsync_events_discarded_total", source="sqs", reason="foreign-account")
        == 1
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "bad-1" in text
    assert "foreign-1" in text
    assert SECRET_VALUE not in text


def test_a_batch_of_only_discards_triggers_nothing_and_is_deleted() -> None:
    triggered: list[list[str]] = []
    queue = run([[Message("bad", "[]")]], recorder(triggered))
    assert triggered == []
    assert [ids for op, ids in queue.calls if op == "delete"] == [["bad"]]


def test_events_that_match_no_secretsync_count_as_unmatched_and_are_deleted() -> None:
    metrics = Metrics()
    queue = run([[Message("m1", event("team-a/db"))]], lambda keys: 0, metrics=metrics)
    assert [ids for op, ids in queue.calls if op == "delete"] == [["m1"]]
    assert (
        value(metrics, "secretsync_events_discarded_total", source="sqs", reason="unmatched") == 1
    )
    assert value(metrics, "secretsync_events_matched_total", source="sqs") == 0


def test_queue_errors_back_off_with_growing_jittered_delays_and_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = ProviderUnavailableError("AWS ReceiveMessage: the service is throttling")
    sleeps: list[float] = []
    triggered: list[list[str]] = []
    with caplog.at_level(logging.WARNING, logger="test.events"):
        run(
            [
                outage,
                outage,
                outage,
                RuntimeError(SECRET_VALUE),
                [Message("m1", event("team-a/db"))],
            ],
            recorder(triggered),
            sleeps=sleeps,
        )
    assert len(sleeps) == 4
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0
    assert 2.0 <= sleeps[2] <= 4.0
    assert 4.0 <= sleeps[3] <= 8.0
    assert triggered == [["team-a/db"]]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "throttling" in text
    assert "RuntimeError" in text
    assert SECRET_VALUE not in text


def test_backoff_is_capped() -> None:
    rng = random.Random(3)  # noqa: S311 - seeded jitter in a test
    assert all(30.0 <= consumer.backoff(n, rng=rng) <= 60.0 for n in range(7, 40))


def test_a_failing_delete_does_not_stop_the_consumer() -> None:
    class FlakyDelete(FakeQueue):
        async def delete(self, messages: Sequence[Message]) -> None:
            await super().delete(messages)
            raise ProviderUnavailableError("AWS DeleteMessageBatch: unavailable")

    async def main() -> FlakyDelete:
        stop = asyncio.Event()
        queue = FlakyDelete([[Message("m1", event("a"))], [Message("m2", event("b"))]], stop)
        await consumer.consume(
            queue,
            on_keys=lambda keys: 1,
            service="SecretsManager",
            account=ACCOUNT,
            region=REGION,
            metrics=Metrics(),
            logger=logging.getLogger("test.events"),
            wait_seconds=0,
            stop=stop,
        )
        return queue

    queue = asyncio.run(main())
    assert [ids for op, ids in queue.calls if op == "delete"] == [["m1"], ["m2"]]


def test_cancellation_ends_the_consumer() -> None:
    class Blocking:
        async def receive(self, *, wait_seconds: int) -> Sequence[Message]:
            await asyncio.sleep(3600)
            return []

        async def delete(self, messages: Sequence[Message]) -> None:
            pass

    async def main() -> None:
        task = asyncio.create_task(
            consumer.consume(
                Blocking(),
                on_keys=lambda keys: 1,
                service="SecretsManager",
                account=ACCOUNT,
                region=REGION,
                metrics=Metrics(),
                logger=logging.getLogger("test.events"),
            )
        )
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
