"""What the engine tells people: statuses (written only when what they say changes, and
retried until they land) and Events. Builders are pure; `Reporter` is the one place that
writes them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from secretsync.engine.keyedlocks import KeyedLocks
from secretsync.engine.outcomes import Outcome
from secretsync.errors import KubeError, KubeFencedError, KubeNotFoundError
from secretsync.kube import Kube
from secretsync.models import status as st
from secretsync.models.base import share
from secretsync.models.status import Condition, Status

CHANGES = {"created": "Created", "updated": "Updated", "adopted": "Adopted", "deleted": "Deleted"}
RETRY_START = 1.0  # seconds before the first retry of a failed status write
RETRY_CAP = 30.0

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)

logger = logging.getLogger("secretsync.engine")


def now_text() -> str:
    # Shared: the statuses of a thousand SecretSyncs synced in one second hold one copy.
    return share(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def sync_status(previous: Status, outcome: Outcome, generation: int) -> Status:
    """A SecretSync's status after a round: Ready from the outcome, other conditions kept;
    lastSyncTime moves only when the Secret changed."""
    now = now_text()
    ready = st.ready_condition(
        ok=outcome.ok,
        reason=outcome.reason,
        message=outcome.message,
        generation=generation,
        previous=previous,
        now=now,
    )
    changed = outcome.write in CHANGES
    return Status(
        conditions=(ready, *(c for c in previous.conditions if c.type != "Ready")),
        observed_generation=generation,
        last_sync_time=now
        if changed or previous.last_sync_time is None
        else previous.last_sync_time,
        synced_versions=outcome.versions if outcome.ok else previous.synced_versions,
        data_hash=outcome.data_hash if outcome.ok else previous.data_hash,
        lease=outcome.lease or previous.lease,
    )


def rollout_status(previous: Status, problems: list[str], generation: int) -> Status:
    """A `Rollout` condition beside Ready: a missing workload is reported, not fatal."""
    ok = not problems
    flag: st.ConditionStatus = "True" if ok else "False"
    old = next((c for c in previous.conditions if c.type == "Rollout"), None)
    cond = Condition(
        type="Rollout",
        status=flag,
        reason="Restarted" if ok else "WorkloadNotReady",
        message="workloads are restarted when the data changes" if ok else "; ".join(problems),
        last_transition_time=old.last_transition_time
        if old is not None and old.status == flag
        else now_text(),
        observed_generation=generation,
    )
    others = tuple(c for c in previous.conditions if c.type != "Rollout")
    return dataclasses.replace(previous, conditions=(*others, cond))


def store_status(previous: Status, outcome: Outcome, generation: int) -> Status:
    ready = st.ready_condition(
        ok=outcome.ok,
        reason=outcome.reason,
        message=outcome.message,
        generation=generation,
        previous=previous,
        now=now_text(),
    )
    return Status(conditions=(ready,), observed_generation=generation)


@dataclasses.dataclass(kw_only=True)
class _Pending:
    status: Status
    attempts: int
    due: float


class Reporter:
    """Writes statuses and Events. A status write that fails is retried with backoff until
    it lands (or a newer status for the object replaces it, or the object goes); an Event
    that cannot be posted is logged and dropped (Events are best effort by design)."""

    def __init__(self, kube: Kube, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self._clock = clock
        self._pending: dict[ObjectKey, _Pending] = {}
        # Writes of one object are serialised, so a retry of an older status can never
        # land after a newer one.
        self._lock = KeyedLocks()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False  # a paused replica writes nothing

    @property
    def pending(self) -> int:
        """How many status writes wait for a retry (a metric, and the tests')."""
        return len(self._pending)

    async def status(
        self, *, kind: str, namespace: str, name: str, old: Status, new: Status, force: bool = False
    ) -> Status:
        """Patch the status if it says something new (or force); returns what the object
        holds, or will hold once a failed write is retried."""
        if self._stopped or (not force and st.same_except_time(new, old)):
            return old
        key = (kind, namespace, name)
        async with self._lock(key):
            self._pending.pop(key, None)  # this write supersedes any older one waiting
            try:
                await self._patch(key, new)
            except KubeNotFoundError:
                return old  # the object is gone: nothing to report on
            except KubeFencedError:
                return old  # another replica serves its namespace now (sharding)
            except KubeError as exc:
                logger.warning(
                    "could not write status of %s %s/%s: %s; retrying", kind, namespace, name, exc
                )
                self._retry_later(key, _Pending(status=new, attempts=0, due=0.0))
            return new

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The object was deleted: drop its pending write."""
        self._pending.pop((kind, namespace, name), None)

    def forget_namespace(self, namespace: str) -> None:
        """Another replica serves the namespace now: drop its pending writes."""
        for key in [k for k in self._pending if k[1] == namespace]:
            del self._pending[key]

    def start(self) -> None:
        """Write again (after stop)."""
        self._stopped = False

    async def stop(self) -> None:
        """Write nothing more and stop retrying (the pending writes are recomputed when
        the replica acts again)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._pending.clear()

    async def event(
        self, *, namespace: str, name: str, uid: str, type_: str, reason: str, message: str
    ) -> None:
        """An Event about a SecretSync."""
        if self._stopped:
            return
        try:
            await self._kube.post_event(
                kind="SecretSync",
                namespace=namespace,
                name=name,
                uid=uid,
                type_=type_,
                reason=reason,
                message=message,
            )
        except KubeFencedError:
            pass  # another replica serves the namespace now (sharding)
        except KubeError as exc:
            logger.warning("could not post Event for SecretSync %s/%s: %s", namespace, name, exc)

    async def _patch(self, key: ObjectKey, status: Status) -> None:
        kind, namespace, name = key
        await self._kube.patch_status(
            kind=kind, namespace=namespace, name=name, status=st.to_patch(status)
        )

    def _retry_later(self, key: ObjectKey, pending: _Pending) -> None:
        pending.attempts += 1
        pending.due = self._clock() + _backoff(pending.attempts)
        self._pending[key] = pending
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._retry_loop(), name="status retries"
            )

    async def _retry_loop(self) -> None:
        while self._pending:
            now = self._clock()
            due = [k for k, p in self._pending.items() if p.due <= now]
            for key in due:
                async with self._lock(key):
                    pending = self._pending.pop(key, None)
                    if pending is None:
                        continue  # a newer status was written meanwhile
                    try:
                        await self._patch(key, pending.status)
                    except (KubeNotFoundError, KubeFencedError):
                        continue
                    except KubeError:
                        self._retry_later(key, pending)
                        continue
                logger.info("wrote the status of %s %s/%s on retry %d", *key, pending.attempts)
            if not self._pending:
                return
            self._wake.clear()
            wait = min(p.due for p in self._pending.values()) - self._clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))


def _backoff(attempts: int) -> float:
    """Status retries: fast at first (an apiserver restart takes seconds), then capped;
    jittered so that a thousand pending writes do not land in one burst."""
    ceiling = min(RETRY_CAP, RETRY_START * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
