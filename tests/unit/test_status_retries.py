"""A status write that fails is retried until it lands; a newer one always wins."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from secretsync.engine import reporting
from secretsync.errors import KubeError, KubeNotFoundError
from secretsync.kube import Kube
from secretsync.models.status import Condition, Status


class FlakyKube:
    """patch_status fails `failures` times, then stores what it was given."""

    def __init__(self, failures: int, *, missing: bool = False) -> None:
        self.failures = failures
        self.missing = missing
        self.held: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.attempts = 0

    async def patch_status(
        self, *, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.attempts += 1
        if self.missing:
            raise KubeNotFoundError("gone")
        if self.failures > 0:
            self.failures -= 1
            raise KubeError("patch status: MaxRetryError")
        await asyncio.sleep(0)
        self.held[(kind, namespace, name)] = status


def ready(reason: str) -> Status:
    ok = reason == "Synced"
    return Status(
        conditions=(
            Condition(
                type="Ready", status="True" if ok else "False", reason=reason, message=reason
            ),
        ),
        observed_generation=1,
    )


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporting, "RETRY_START", 0.01)
    monkeypatch.setattr(reporting, "RETRY_CAP", 0.05)


def test_a_failed_status_write_is_retried_until_it_lands() -> None:
    async def main() -> None:
        kube = FlakyKube(failures=5)
        reporter = reporting.Reporter(cast(Kube, kube))
        new = ready("Synced")
        held = await reporter.status(
            kind="SecretSync", namespace="a", name="db", old=Status(), new=new
        )
        assert held == new  # what the object will hold
        assert reporter.pending == 1
        for _ in range(200):
            if ("SecretSync", "a", "db") in kube.held:
                break
            await asyncio.sleep(0.01)
        assert kube.held[("SecretSync", "a", "db")]["conditions"][0]["reason"] == "Synced"
        assert kube.attempts == 6
        assert reporter.pending == 0
        await reporter.stop()

    asyncio.run(main())


def test_a_newer_status_replaces_a_pending_one_and_is_never_overwritten_by_it() -> None:
    async def main() -> None:
        kube = FlakyKube(failures=1)
        reporter = reporting.Reporter(cast(Kube, kube))
        await reporter.status(
            kind="SecretSync", namespace="a", name="db", old=Status(), new=ready("NotFound")
        )
        assert reporter.pending == 1
        await reporter.status(
            kind="SecretSync", namespace="a", name="db", old=Status(), new=ready("Synced")
        )
        await asyncio.sleep(0.2)  # any retry of the older one would have run by now
        assert kube.held[("SecretSync", "a", "db")]["conditions"][0]["reason"] == "Synced"
        assert reporter.pending == 0
        await reporter.stop()

    asyncio.run(main())


def test_the_retry_stops_when_the_object_is_gone() -> None:
    async def main() -> None:
        kube = FlakyKube(failures=1)
        reporter = reporting.Reporter(cast(Kube, kube))
        await reporter.status(
            kind="SecretSync", namespace="a", name="db", old=Status(), new=ready("Synced")
        )
        kube.missing = True
        await asyncio.sleep(0.2)
        assert reporter.pending == 0
        assert kube.held == {}
        await reporter.stop()

    asyncio.run(main())


def test_an_unchanged_status_is_not_written() -> None:
    async def main() -> None:
        kube = FlakyKube(failures=0)
        reporter = reporting.Reporter(cast(Kube, kube))
        same = ready("Synced")
        held = await reporter.status(
            kind="SecretSync", namespace="a", name="db", old=same, new=same
        )
        assert held is same
        assert kube.attempts == 0

    asyncio.run(main())
