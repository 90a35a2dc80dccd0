"""Rotation event sources of stores: one SQS consumer per store that names a queue.

The engine tells `EventSources` about every store it observes (`sync_store`) and
every store that goes away (`drop`). A store with `spec.events.sqs.queueUrl` gets a
consumer task (events/consumer.py) that reads the queue as the store's identity,
through the runner's session cache (one login per credential lifetime, shared with
the store's syncs, renewed before expiry), and hands the keys of each batch of
events to the engine's `notify`. A new generation of the store restarts its
consumer; a store without a queue, or gone, has none.

Whose identity reads the queue:

- a SecretStore: its own, exactly as for its syncs (its namespace's ServiceAccount
  or Secret);
- a ClusterSecretStore whose identity does not depend on the SecretSync's namespace
  (ambient, or secretRefs that name their namespace): that identity;
- a ClusterSecretStore whose identity resolves in each SecretSync's namespace (a
  serviceAccount, or secretRefs without a namespace): no namespace can speak for
  the store, so the queue is read with the operator's own ambient credentials (then
  the store's `role` and `additionalRoles`, assumed from them). The operator's
  identity must be allowed to assume that role and read the queue.

A queue is meant for one store: SQS hands each message to one reader, so two stores
naming one queue would each miss the other's events (a warning says so). Feed
several queues from one EventBridge rule (a rule takes up to five targets) instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from secretsync.auth.plan import LoginPlan, plan_login
from secretsync.engine.runner import Runner
from secretsync.engine.stores import StoreEntry
from secretsync.errors import AccessDeniedError, ConfigError, ProviderAuthError, SecretSyncError
from secretsync.events import aws, consumer
from secretsync.metrics import Metrics
from secretsync.models.remote import CallObserver
from secretsync.providers.base import EventQueue, EventSourceBackend, QueueMessage, Session

logger = logging.getLogger("secretsync.events")


class Notify(Protocol):
    """Engine.notify: make the store's SecretSyncs that read any of the keys due now."""

    def __call__(
        self, *, kind: str, namespace: str, name: str, keys: Sequence[str], source: str
    ) -> int | None: ...


@dataclasses.dataclass(kw_only=True)
class _Consumer:
    uid: str
    generation: int
    queue_url: str
    task: asyncio.Task[None]


class EventSources:
    """The running event consumers, one per store with an event queue."""

    def __init__(
        self, *, notify: Notify, metrics: Metrics, wait_seconds: int = consumer.WAIT_SECONDS
    ) -> None:
        self._notify = notify
        self._metrics = metrics
        self._wait_seconds = wait_seconds
        self._consumers: dict[str, _Consumer] = {}

    def sync_store(self, store: StoreEntry, runner: Runner) -> None:
        """Start, restart or stop the store's consumer to match what it now says."""
        queue_url = _queue_url(store)
        current = self._consumers.get(store.key)
        if (
            current is not None
            and current.uid == store.uid
            and current.generation == store.generation
            and current.queue_url == queue_url
        ):
            return
        self.drop(store.key)
        if queue_url is None:
            return
        try:
            backend = runner.backend(store)
            plan = _plan(store)
        except SecretSyncError as exc:
            logger.warning("not reading the event queue of %s: %s", store.key, exc)
            return
        if not isinstance(backend, EventSourceBackend):
            logger.warning(
                "not reading the event queue of %s: its provider sends no events", store.key
            )
            return
        for key, other in self._consumers.items():
            if other.queue_url == queue_url:
                logger.warning(
                    "%s and %s read the same event queue: each will miss events the other "
                    "receives; give each store a queue of its own",
                    store.key,
                    key,
                )
        task = asyncio.get_running_loop().create_task(
            self._run(store, runner, backend, plan, queue_url), name=f"events {store.key}"
        )
        self._consumers[store.key] = _Consumer(
            uid=store.uid, generation=store.generation, queue_url=queue_url, task=task
        )

    def drop(self, store_key: str) -> None:
        """Stop the consumer of a store that is gone or changed (no-op without one)."""
        old = self._consumers.pop(store_key, None)
        if old is not None:
            old.task.cancel()

    async def stop(self) -> None:
        """Stop every consumer and wait for them to finish."""
        tasks = [c.task for c in self._consumers.values()]
        self._consumers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def running(self) -> dict[str, str]:
        """Store key -> queue URL of every running consumer (for tests and debugging)."""
        return {key: c.queue_url for key, c in self._consumers.items() if not c.task.done()}

    async def _run(
        self,
        store: StoreEntry,
        runner: Runner,
        backend: EventSourceBackend,
        plan: LoginPlan,
        queue_url: str,
    ) -> None:
        aws_spec = store.spec.provider.aws if store.spec is not None else None
        if aws_spec is None:  # _queue_url() made sure of it; this narrows the type
            return

        def observe(operation: str, outcome: str) -> None:
            self._metrics.provider_calls.labels("aws", operation, outcome).inc()

        def on_keys(keys: list[str]) -> int | None:
            return self._notify(
                kind=store.kind, namespace=store.namespace, name=store.name, keys=keys, source="sqs"
            )

        queue = _StoreQueue(
            store=store,
            runner=runner,
            backend=backend,
            plan=plan,
            queue_url=queue_url,
            observe=observe,
        )
        logger.info("reading the event queue of %s as %s", store.key, plan.describe())
        try:
            await consumer.consume(
                queue,
                on_keys=on_keys,
                service=aws_spec.service,
                account=aws.store_account(aws_spec.role, aws_spec.additional_roles),
                region=aws_spec.region,
                metrics=self._metrics,
                logger=logger,
                name=store.key,
                wait_seconds=self._wait_seconds,
            )
        finally:
            await queue.close()


class _StoreQueue:
    """The store's queue as the session the runner holds now: a renewed session (or a
    new login after refused credentials) gets a new SDK client, transparently."""

    def __init__(
        self,
        *,
        store: StoreEntry,
        runner: Runner,
        backend: EventSourceBackend,
        plan: LoginPlan,
        queue_url: str,
        observe: CallObserver,
    ) -> None:
        self._store = store
        self._runner = runner
        self._backend = backend
        self._plan = plan
        self._url = queue_url
        self._observe = observe
        self._session: Session | None = None
        self._queue: EventQueue | None = None

    async def receive(self, *, wait_seconds: int) -> Sequence[QueueMessage]:
        queue = await self._current()
        try:
            return await queue.receive(wait_seconds=wait_seconds)
        except ProviderAuthError as exc:
            if not isinstance(exc, AccessDeniedError):
                # Credentials refused or expired: log in afresh next time, as syncs do.
                self._runner.forget(self._store.key)
            raise

    async def delete(self, messages: Sequence[QueueMessage]) -> None:
        # Receipt handles are valid whoever deletes: the queue that received will do.
        queue = self._queue or await self._current()
        await queue.delete(messages)

    async def close(self) -> None:
        await _close(self._queue)
        self._queue = self._session = None

    async def _current(self) -> EventQueue:
        session = await self._runner.session(self._store, self._plan)
        if self._queue is None or session is not self._session:
            await _close(self._queue)
            self._queue = self._backend.event_queue(session, self._url, self._observe)
            self._session = session
        return self._queue


async def _close(queue: EventQueue | None) -> None:
    close = getattr(queue, "close", None)
    if close is not None:
        await close()


def _queue_url(store: StoreEntry) -> str | None:
    """The store's event queue, if it has a usable spec for a provider that has one."""
    spec = store.spec
    if spec is None or spec.provider.aws is None or spec.events.sqs is None:
        return None
    return spec.events.sqs.queue_url


def _plan(store: StoreEntry) -> LoginPlan:
    """Who reads the store's queue (see the module docstring)."""
    if store.spec is None:
        raise ConfigError(f"{store.kind} {store.name} is invalid: {store.spec_error}")
    if store.kind == "ClusterSecretStore":
        probes = {
            plan_login(store.spec, store_namespace=None, sync_namespace=ns).describe()
            for ns in ("a", "b")
        }
        if len(probes) > 1:
            return LoginPlan(namespace="")  # the operator's ambient identity
        return plan_login(store.spec, store_namespace=None, sync_namespace="")
    return plan_login(
        store.spec, store_namespace=store.namespace or None, sync_namespace=store.namespace
    )
