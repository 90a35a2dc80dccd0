"""The SQS consumer: long-poll a store's queue, turn each batch of events into one call
that makes the SecretSyncs reading the changed keys due, then delete the batch.

Guarantees:

- A message is deleted only after `on_keys` returned for it (its syncs were made due);
  if `on_keys` fails, the batch is left for SQS to deliver again after its visibility
  timeout (the queue's redrive policy bounds how often).
- Malformed, foreign and irrelevant messages are deleted too, with their discard
  counted and logged by message id and reason only: never retried forever.
- A batch of up to ten messages is one `on_keys` call with every key in it, so a burst
  of rotations of one secret makes its SecretSyncs due once.
- Queue errors (throttling, outage, refused or expired credentials) back off with
  jitter and retry; the loop only ends when its task is cancelled or `stop` is set.
- No message body, which may quote anything, reaches a log line or an exception.

This module takes the queue as a structural `Queue` protocol: events/ sits beside
providers/ and may not import it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from secretsync.errors import SecretSyncError
from secretsync.events import aws
from secretsync.metrics import Metrics

SOURCE = "sqs"  # the `source` label of the events_* metrics
WAIT_SECONDS = 20  # SQS's longest long poll: fewest empty receives, and a message still
# returns at once
BACKOFF_START = 1.0
BACKOFF_CAP = 60.0

LoggerLike = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Message(Protocol):
    """What the consumer reads of a queue message (providers.base.QueueMessage has it)."""

    @property
    def id(self) -> str: ...

    @property
    def body(self) -> str: ...


M = TypeVar("M", bound=Message)


class Queue(Protocol[M]):
    """A queue of change events (providers.base.EventQueue has this shape)."""

    async def receive(self, *, wait_seconds: int) -> Sequence[M]: ...

    async def delete(self, messages: Sequence[M]) -> None: ...


def backoff(failures: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failures` consecutive queue errors: exponential from 1 s
    to 60 s, the upper half jittered so that stores sharing an outage spread out."""
    ceiling = min(BACKOFF_CAP, BACKOFF_START * 2 ** max(failures - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)


async def consume(
    queue: Queue[M],
    *,
    on_keys: Callable[[list[str]], int | None],
    service: aws.Service | None,
    account: str | None,
    region: str,
    metrics: Metrics,
    logger: LoggerLike,
    name: str = "",
    wait_seconds: int = WAIT_SECONDS,
    stop: asyncio.Event | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> None:
    """Read the queue until cancelled (or until `stop` is set).

    `on_keys(keys)` makes the SecretSyncs that read any of the keys due and returns how
    many it matched (None: the store is unknown). `service`, `account` and `region` are
    the store's (see `events.aws.parse`); `name` names the store in log lines.
    """
    failures = 0
    while stop is None or not stop.is_set():
        try:
            batch = await queue.receive(wait_seconds=wait_seconds)
        except Exception as exc:  # noqa: BLE001 - the consumer must outlive any failure
            failures += 1
            delay = backoff(failures, rng=rng)
            logger.warning(
                "cannot read the event queue of %s (%s); retrying in %.1fs",
                name,
                _describe(exc),
                delay,
            )
            await sleep(delay)
            continue
        if failures:
            logger.info("reading the event queue of %s again", name)
            failures = 0
        if batch:
            await _handle(
                queue,
                batch,
                on_keys=on_keys,
                service=service,
                account=account,
                region=region,
                metrics=metrics,
                logger=logger,
                name=name,
            )


async def _handle(
    queue: Queue[M],
    batch: Sequence[M],
    *,
    on_keys: Callable[[list[str]], int | None],
    service: aws.Service | None,
    account: str | None,
    region: str,
    metrics: Metrics,
    logger: LoggerLike,
    name: str,
) -> None:
    keys: dict[str, None] = {}  # ordered and de-duplicated across the batch
    changed: list[M] = []
    done: list[M] = []
    for message in batch:
        metrics.events_received.labels(SOURCE).inc()
        result = aws.parse(message.body, service=service, account=account, region=region)
        if isinstance(result, aws.Discarded):
            metrics.events_discarded.labels(SOURCE, result.reason).inc()
            level = logging.INFO if result.reason == "irrelevant" else logging.WARNING
            logger.log(
                level, "discarded event message %s of %s: %s", message.id, name, result.reason
            )
            done.append(message)
        else:
            keys.update(dict.fromkeys(result.keys))
            changed.append(message)
    if changed:
        try:
            matched = on_keys(list(keys))
        except Exception as exc:  # noqa: BLE001 - left in the queue, delivered again
            logger.error(
                "could not act on %d event messages of %s (%s); SQS will deliver them again",
                len(changed),
                name,
                _describe(exc),
            )
        else:
            if matched:
                metrics.events_matched.labels(SOURCE).inc(len(changed))
            else:
                metrics.events_discarded.labels(SOURCE, "unmatched").inc(len(changed))
            logger.info(
                "%d event messages of %s changed %d remote keys: %d SecretSyncs due now",
                len(changed),
                name,
                len(keys),
                matched or 0,
            )
            done.extend(changed)
    if done:
        try:
            await queue.delete(done)
        except Exception as exc:  # noqa: BLE001 - redelivered, and acting twice is harmless
            logger.warning(
                "could not delete %d event messages of %s (%s); they will be seen again",
                len(done),
                name,
                _describe(exc),
            )


def _describe(exc: Exception) -> str:
    """Our own errors' messages are built to hold no value; anything else, its type only."""
    return str(exc) if isinstance(exc, SecretSyncError) else type(exc).__name__
