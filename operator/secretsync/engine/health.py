"""What the operator can actually do, for its readiness probe and /healthz.

A replica is ready when it reaches the Kubernetes API with its own identity and RBAC
(the same list requests its watches start with), its start-up is done, and, when it is
the active replica, its engine runs. A standby is ready too: it is healthy and takes
over when the active replica goes; it says so in its role. A replica that loses the API
becomes unready, and ready again by itself when the API answers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Literal

from secretsync.engine.engine import Engine
from secretsync.engine.sharding import ShardManager
from secretsync.errors import KubeError
from secretsync.kube import Kube

CACHE_SECONDS = 5.0  # probes come every few seconds; the API is asked at most this often
API_TIMEOUT = 5.0

Role = Literal["starting", "active", "standby"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    """One readiness answer: ready or not, the role, and each check's result in words."""

    ready: bool
    role: Role
    checks: dict[str, str]

    def as_json(self) -> dict[str, object]:
        return {"ready": self.ready, "role": self.role, "checks": self.checks}


class Health:
    """Readiness and role of this replica."""

    def __init__(
        self,
        *,
        kube: Kube,
        engine: Engine | None,
        namespaces: Sequence[str],  # empty: cluster-wide
        label_selector: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self.engine = engine
        self.sharding: ShardManager | None = None  # set when sharded
        self._namespaces = list(namespaces)
        self._selector = label_selector
        self._clock = clock
        self._cached: tuple[float, str] | None = None  # (when, API check result)
        self._lock = asyncio.Lock()

    @property
    def role(self) -> Role:
        if self.engine is None:
            return "starting"
        if self.sharding is not None:
            return "active" if self.sharding.held else "standby"
        return "active" if self.engine.active else "standby"

    async def readiness(self) -> Report:
        """Ask the API (at most every CACHE_SECONDS) and the engine."""
        api = await self._api()
        engine = self.engine
        if engine is None:
            return Report(ready=False, role="starting", checks={"api": api, "engine": "starting"})
        if self.sharding is not None:
            # Sharded: ready when the shard Leases were read recently; a replica that holds
            # no shard (more replicas than shards, or one waiting for replicas of another
            # shard count to leave) is a ready standby, and says why in its checks.
            problem = engine.problem() or self.sharding.problem()
            return Report(
                ready=api == "ok" and problem is None,
                role=self.role,
                checks={"api": api, "engine": problem or "ok", "shards": self.sharding.describe()},
            )
        if engine.active:
            problem = engine.problem()
            return Report(
                ready=api == "ok" and problem is None,
                role="active",
                checks={"api": api, "engine": problem or "ok"},
            )
        return Report(
            ready=api == "ok",
            role="standby",
            checks={"api": api, "engine": "standing by: another replica acts"},
        )

    async def _api(self) -> str:
        async with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            result = "ok"
            try:
                async with asyncio.timeout(API_TIMEOUT):
                    scopes: list[str | None] = [*self._namespaces] or [None]
                    for namespace in scopes:
                        await self._kube.can_list(
                            namespace=namespace, label_selector=self._selector
                        )
            except KubeError as exc:
                result = f"cannot reach the Kubernetes API: {exc}"
            except TimeoutError:
                result = f"the Kubernetes API did not answer within {API_TIMEOUT:.0f}s"
            self._cached = (self._clock(), result)
            return result
