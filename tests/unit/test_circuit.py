"""The circuit per identity and endpoint: what a throttling provider gets from us."""

from __future__ import annotations

import asyncio
import random

import pytest

from secretsync.engine.circuit import BACKOFF_CAP, Circuits
from secretsync.errors import AccessDeniedError, ProviderError, ProviderUnavailableError

KEY = ("aws:SecretsManager:eu-west-1::arn:aws:iam::1:role/r", "serviceaccount:team-a/sync")
OTHER = ("aws:SecretsManager:eu-west-1::arn:aws:iam::1:role/r", "serviceaccount:team-b/sync")
THROTTLED = ProviderUnavailableError("AWS BatchGetSecretValue: throttling (ThrottlingException)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def circuits(clock: Clock) -> Circuits:
    return Circuits(clock=clock, rng=random.Random(7))  # noqa: S311 - jitter, not crypto


def test_a_healthy_identity_has_no_circuit_and_calls_flow() -> None:
    clock = Clock()
    c = circuits(clock)
    asyncio.run(c.enter(KEY))
    c.record(KEY, None)
    assert len(c) == 0
    assert c.remaining(KEY) is None


def test_throttling_opens_the_circuit_of_that_identity_only() -> None:
    clock = Clock()
    c = circuits(clock)
    c.record(KEY, THROTTLED)
    with pytest.raises(ProviderUnavailableError) as refused:
        asyncio.run(c.enter(KEY))
    assert refused.value.retry_after is not None
    assert 1.0 <= refused.value.retry_after <= 2.0  # the first backoff step: [1, 2] s
    assert "retried with backoff" in str(refused.value)
    asyncio.run(c.enter(OTHER))  # another identity is not held back


def test_backoff_doubles_per_failed_probe_and_is_capped() -> None:
    clock = Clock()
    c = circuits(clock)
    waits = []
    for _ in range(12):
        c.record(KEY, THROTTLED)
        wait = c.remaining(KEY)
        assert wait is not None
        waits.append(wait)
        clock.now += wait
    ceilings = [min(BACKOFF_CAP, 2.0 * 2**i) for i in range(12)]
    assert all(c_ / 2 <= w <= c_ for w, c_ in zip(waits, ceilings, strict=True))
    assert max(waits) <= BACKOFF_CAP


def test_retry_after_from_the_provider_is_honoured() -> None:
    clock = Clock()
    c = circuits(clock)
    c.record(KEY, ProviderUnavailableError("vault: 429", retry_after=45.0))
    assert c.remaining(KEY) == pytest.approx(45.0)


def test_half_open_lets_one_probe_through_and_the_others_wait_for_its_answer() -> None:
    async def main() -> None:
        clock = Clock()
        c = circuits(clock)
        c.record(KEY, THROTTLED)
        clock.now += 10
        await c.enter(KEY)  # the probe
        waiter = asyncio.ensure_future(c.enter(KEY))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # no second call while the probe is out
        c.record(KEY, None)  # the probe got an answer: closed
        await asyncio.wait_for(waiter, 1)
        assert len(c) == 0

    asyncio.run(main())


def test_a_failed_probe_reopens_and_the_waiters_are_refused() -> None:
    async def main() -> None:
        clock = Clock()
        c = circuits(clock)
        c.record(KEY, THROTTLED)
        clock.now += 10
        await c.enter(KEY)
        waiter = asyncio.ensure_future(c.enter(KEY))
        await asyncio.sleep(0.01)
        c.record(KEY, THROTTLED)
        with pytest.raises(ProviderUnavailableError):
            await asyncio.wait_for(waiter, 1)

    asyncio.run(main())


def test_any_answer_of_the_provider_closes_the_circuit_an_abandoned_call_does_not() -> None:
    async def main() -> None:
        clock = Clock()
        c = circuits(clock)
        c.record(KEY, THROTTLED)
        clock.now += 10
        await c.enter(KEY)
        c.record(KEY, ProviderError("the call was abandoned"))  # says nothing about health
        assert len(c) == 1
        await c.enter(KEY)  # the probe slot is free again
        c.record(KEY, AccessDeniedError("denied"))  # the provider answered
        assert len(c) == 0

    asyncio.run(main())


def test_calls_already_under_way_when_it_opens_do_not_escalate_the_backoff() -> None:
    clock = Clock()
    c = circuits(clock)
    for _ in range(8):  # eight concurrent KV reads, all throttled
        c.record(KEY, THROTTLED)
    wait = c.remaining(KEY)
    assert wait is not None
    assert wait <= 2.0  # one step, not eight


def test_a_call_that_must_go_before_the_probe_probes_early() -> None:
    """A lease renewal must not wait for a probe that comes after the lease ended
    (test_vault_leases.py saw credentials lapse and be issued anew after an outage)."""
    clock = Clock()
    c = circuits(clock)
    c.record(KEY, ProviderUnavailableError("vault: unreachable", retry_after=40.0))
    with pytest.raises(ProviderUnavailableError):
        asyncio.run(c.enter(KEY, must_go_within=120.0))  # the probe comes in time

    async def run() -> None:
        await c.enter(KEY, must_go_within=20.0)  # it would not: this call probes now
        other = asyncio.ensure_future(c.enter(KEY))
        await asyncio.sleep(0.05)
        assert not other.done(), "the early call is the one probe: others wait for it"
        c.record(KEY, None)
        await asyncio.wait_for(other, 1.0)

    asyncio.run(run())


def test_an_early_probe_that_fails_frees_the_probe_and_backs_off_further() -> None:
    clock = Clock()
    c = circuits(clock)
    c.record(KEY, ProviderUnavailableError("vault: unreachable", retry_after=40.0))
    asyncio.run(c.enter(KEY, must_go_within=20.0))
    c.record(KEY, ProviderUnavailableError("vault: unreachable"))  # the early probe failed
    wait = c.remaining(KEY)
    assert wait is not None
    clock.now += wait
    # Half-open again: a probe goes at once, rather than wait for the first one's answer.
    asyncio.run(asyncio.wait_for(c.enter(KEY), 1.0))
