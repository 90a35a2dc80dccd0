"""A token bucket per store: the provider calls a store may make (spec.refreshBudget)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Budget:
    """Waits until a call fits in the budget; syncs queue behind it instead of failing."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self, calls: int = 1) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                need = min(float(calls), self.burst)
                if self._tokens >= need:
                    self._tokens -= need
                    return
                await asyncio.sleep((need - self._tokens) / self.rate)
