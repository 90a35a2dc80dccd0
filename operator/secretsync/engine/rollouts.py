"""Rollout restarts: when the data a workload consumes really changed, set one pod-template
annotation so its controller rolls the pods once.

The annotation's value is a keyed hash over the data hashes of every SecretSync that
lists the workload, so it is a pure function of the synced data: an operator restart,
an unchanged refresh or a resync after an outage computes the same value and patches
nothing, and SecretSyncs that change together within the debounce window cause one
restart, not one each.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable

from secretsync.errors import KubeError, KubeNotFoundError
from secretsync.kube import Kube
from secretsync.metrics import Metrics

ANNOTATION = "secretsync.io/data-hash"
DEBOUNCE = 1.0  # seconds to wait for other SecretSyncs of the same workload

Workload = tuple[str, str, str]  # (namespace, kind, name)
# (SecretSync name, its current data hash) for every SecretSync listing a workload
Feeds = Callable[[Workload], Iterable[tuple[str, str]]]
# (workload, problem or None, whether it was restarted now)
Report = Callable[[Workload, str | None, bool], Awaitable[None]]

logger = logging.getLogger("secretsync.rollouts")


def combined_hash(key: bytes, feeds: Iterable[tuple[str, str]]) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name, data_hash in sorted(feeds):
        mac.update(f"{name}\0{data_hash}\n".encode())
    return "hmac-sha256:" + mac.hexdigest()


class Rollouts:
    """Debounced, idempotent restarts of workloads listed in spec.rollout.restart."""

    def __init__(
        self, *, kube: Kube, metrics: Metrics, key: bytes, feeds: Feeds, report: Report
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self._key = key
        self._feeds = feeds
        self._report = report
        self._pending: dict[Workload, asyncio.Task[None]] = {}  # debouncing
        self._tasks: set[asyncio.Task[None]] = set()  # every restart until it finishes

    def changed(self, workloads: Iterable[Workload]) -> None:
        """The data feeding these workloads changed: restart each once, after the debounce."""
        for workload in workloads:
            if workload not in self._pending:
                task = asyncio.get_running_loop().create_task(self._restart(workload))
                self._pending[workload] = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel every restart, debouncing or under way (a paused replica writes nothing)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _restart(self, workload: Workload) -> None:
        namespace, kind, name = workload
        try:
            await asyncio.sleep(DEBOUNCE)
        finally:
            self._pending.pop(workload, None)
        feeds = list(self._feeds(workload))
        if not feeds:
            return
        wanted = combined_hash(self._key, feeds)
        try:
            current = await self._kube.workload_annotation(
                kind=kind, namespace=namespace, name=name, key=ANNOTATION
            )
            if current == wanted:
                self._metrics.rollout_restarts.labels(kind, "unchanged").inc()
                await self._report(workload, None, False)
                return
            await self._kube.set_workload_annotation(
                kind=kind, namespace=namespace, name=name, key=ANNOTATION, value=wanted
            )
        except KubeNotFoundError:
            self._metrics.rollout_restarts.labels(kind, "not_found").inc()
            problem = f"{kind} {name} does not exist in namespace {namespace}"
            await self._report(workload, problem, False)
            return
        except KubeError as exc:
            self._metrics.rollout_restarts.labels(kind, "failed").inc()
            await self._report(workload, f"could not restart {kind} {name}: {exc}", False)
            return
        self._metrics.rollout_restarts.labels(kind, "restarted").inc()
        logger.info("restarted %s %s/%s: the synced data changed", kind, namespace, name)
        await self._report(workload, None, True)
