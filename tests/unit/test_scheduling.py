"""Refreshes align per store (so its syncs batch), stores spread, failures back off."""

from __future__ import annotations

import random

from secretsync.engine import schedule


def test_syncs_of_one_store_refresh_together() -> None:
    a = schedule.next_refresh(1000.0, 60.0, "SecretStore/team-a/aws")
    b = schedule.next_refresh(a - 59.0, 60.0, "SecretStore/team-a/aws")  # synced later
    assert a == b
    assert 1000.0 < a <= 1060.0


def test_next_refresh_is_strictly_in_the_future() -> None:
    due = schedule.next_refresh(500.0, 30.0, "s")
    assert schedule.next_refresh(due, 30.0, "s") == due + 30.0


def test_stores_spread_over_the_interval() -> None:
    phases = {schedule.phase(f"SecretStore/ns-{i}/aws", 3600.0) for i in range(50)}
    assert len(phases) > 40


def test_backoff_grows_and_is_capped_by_the_refresh_interval() -> None:
    rng = random.Random(1)  # noqa: S311 - a seeded test of jitter, not crypto
    first = schedule.backoff(1, 3600.0, rng=rng)
    later = schedule.backoff(8, 3600.0, rng=rng)
    assert 0.5 <= first <= 2.0
    assert 64.0 <= later <= 256.0
    assert schedule.backoff(30, 20.0, rng=rng) <= 20.0
