"""The engine follows kopf's peering rule: who acts, who stands by."""

from __future__ import annotations

import datetime

from secretsync.engine.peering import blockers

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_oldest_live_replica_acts_and_the_younger_stands_by() -> None:
    peers = {"a": peer(-100, 5), "b": peer(-200, 5)}  # a started earlier: higher priority
    assert blockers(peers, identity="a", priority=-100, now=NOW) == []
    assert blockers(peers, identity="b", priority=-200, now=NOW) == ["a"]


def test_a_peer_whose_heartbeat_lapsed_blocks_nobody() -> None:
    peers = {"a": peer(-100, 61), "b": peer(-200, 5)}
    assert blockers(peers, identity="b", priority=-200, now=NOW) == []


def test_equal_priorities_pause_both_as_kopf_does() -> None:
    peers = {"a": peer(5, 1), "b": peer(5, 1)}
    assert blockers(peers, identity="a", priority=5, now=NOW) == ["b"]
    assert blockers(peers, identity="b", priority=5, now=NOW) == ["a"]


def test_unreadable_entries_are_ignored() -> None:
    peers = {"x": {"priority": "high"}, "y": "garbage", "a": peer(1, 1)}
    assert blockers(peers, identity="a", priority=1, now=NOW) == []  # type: ignore[arg-type]
