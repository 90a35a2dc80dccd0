"""Circuits: one per identity and endpoint, so a throttling or failing provider gets a few
probes with backoff instead of a retry storm.

A provider throttles a caller (AWS: per account and region; Vault: per server), not a
SecretSync. So when a call of an identity to an endpoint answers "throttled" or
"unavailable", the circuit of that pair opens: every further call of that identity to
that endpoint (syncs, change checks, store checks, logins) is refused locally until the
backoff has passed, and the SecretSyncs that were due wait in the engine's schedule. Then
one call goes through as a probe (half-open) while the others wait for its answer: an
answer closes the circuit, another failure opens it again for twice as long (full
jitter, capped; at least what a `Retry-After` asked for).

Only circuits that failed lately are kept: a healthy pair has no entry, so the map
shrinks by itself when identities or stores go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Callable

from secretsync.errors import ProviderError, ProviderUnavailableError

BACKOFF_START = 2.0
BACKOFF_CAP = 300.0
PROBE_TIMEOUT = 60.0  # a probe that never reports (cancelled) frees the circuit after this
FORGET_AFTER = 3600.0  # an open circuit nobody probed for this long belongs to nobody

CircuitKey = tuple[str, str]  # (endpoint, identity)


def backoff(failures: int, *, rng: random.Random) -> float:
    """Seconds the circuit stays open after `failures` failures in a row: exponential,
    capped, jittered over its upper half so that identities do not probe in lockstep."""
    ceiling = min(BACKOFF_CAP, BACKOFF_START * 2 ** max(failures - 1, 0))
    return rng.uniform(ceiling / 2, ceiling)


@dataclasses.dataclass(kw_only=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    probe: asyncio.Future[None] | None = None  # the half-open probe in flight
    probe_started: float = 0.0

    def release_probe(self) -> None:
        if self.probe is not None and not self.probe.done():
            self.probe.set_result(None)
        self.probe = None


class Circuits:
    """The open (or half-open) circuits, by (endpoint, identity)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._circuits: dict[CircuitKey, _Circuit] = {}

    def __len__(self) -> int:
        return len(self._circuits)

    def open_count(self, provider: str) -> int:
        """How many circuits of a provider ("aws", "vault") hold calls back now (open, or
        half-open with a probe out)."""
        now = self._clock()
        return sum(
            1
            for (endpoint, _), c in self._circuits.items()
            if endpoint.startswith(f"{provider}:") and (now < c.open_until or c.probe)
        )

    def sweep(self) -> None:
        """Drop circuits nobody has probed long after they allowed it: their identity is
        gone (a deleted store or namespace), so nothing would ever close them."""
        horizon = self._clock() - FORGET_AFTER
        for key in [
            k for k, c in self._circuits.items() if c.probe is None and c.open_until < horizon
        ]:
            del self._circuits[key]

    def remaining(self, key: CircuitKey) -> float | None:
        """Seconds until the circuit lets a probe through; None when it is closed."""
        circuit = self._circuits.get(key)
        if circuit is None:
            return None
        return max(circuit.open_until - self._clock(), 0.0)

    async def enter(self, key: CircuitKey, *, must_go_within: float | None = None) -> None:
        """Return when a call may go; raise ProviderUnavailableError (with retry_after)
        while the circuit is open. In half-open state the first caller is the probe and
        the others wait for its answer.

        `must_go_within`: seconds before the call is of no use any more (a lease renewal
        before the lease ends). Such a call probes early rather than wait for a probe
        that would come after half that time: the backoff must not outlast the
        credentials it would renew."""
        while True:
            circuit = self._circuits.get(key)
            if circuit is None:
                return
            now = self._clock()
            if must_go_within is not None and circuit.open_until - now > must_go_within / 2:
                # The probe is brought forward to now: its failure is then a failed probe
                # (the next backoff step, and the probe slot freed), not a straggler.
                circuit.open_until = now
            if now < circuit.open_until:
                # The same words at every refused round, so the statuses they produce do
                # not change (and are not written again); and no remote key of the call
                # that opened it, which may be another namespace's (a shared identity).
                raise ProviderUnavailableError(
                    f"{key[0].split(':', 1)[0]}: the provider is throttling or unavailable "
                    "for this identity; its calls wait and are retried with backoff",
                    retry_after=circuit.open_until - now,
                )
            if circuit.probe is None or now - circuit.probe_started > PROBE_TIMEOUT:
                circuit.release_probe()
                circuit.probe = asyncio.get_running_loop().create_future()
                circuit.probe_started = now
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(circuit.probe), PROBE_TIMEOUT)

    def record(self, key: CircuitKey, error: ProviderError | None) -> None:
        """A call's outcome: unavailable opens (or re-opens) the circuit; an answer from
        the provider, even a refusal, closes it; anything else (a call abandoned, an
        unknown failure) says nothing about the provider's health."""
        circuit = self._circuits.get(key)
        now = self._clock()
        if isinstance(error, ProviderUnavailableError):
            if circuit is not None and now < circuit.open_until:
                # A call that was under way when the circuit opened: the same failure,
                # not a failed probe. It may lengthen the wait (a Retry-After), never the
                # backoff, or eight concurrent reads would mean eight steps at once.
                wait = error.retry_after or 0.0
                circuit.open_until = max(circuit.open_until, now + wait)
                return
            if circuit is None:
                circuit = self._circuits[key] = _Circuit()
            circuit.failures += 1
            delay = backoff(circuit.failures, rng=self._rng)
            circuit.open_until = now + max(delay, error.retry_after or 0.0)
            circuit.release_probe()
        elif error is None or type(error) is not ProviderError:
            if circuit is not None:
                circuit.release_probe()
                del self._circuits[key]
        elif circuit is not None:
            circuit.release_probe()
