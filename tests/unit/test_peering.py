"""The engine follows kopf's peering rule: who acts, who stands by."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, cast

from secretsync.engine.peering import PeeringMonitor, blockers
from secretsync.kube import Kube

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


class FakeKube:
    """Answers peering_status with what the test puts in `peers`."""

    def __init__(self) -> None:
        self.peers: dict[str, Any] = {}

    async def peering_status(self, name: str, *, namespace: str | None) -> dict[str, Any]:
        return dict(self.peers)


def test_a_replica_acts_only_after_two_clear_readings_and_stands_by_at_once() -> None:
    async def main() -> None:
        kube = FakeKube()
        roles: list[bool] = []

        async def on_change(active: bool) -> None:
            roles.append(active)

        monitor = PeeringMonitor(
            kube=cast(Kube, kube),
            name="group",
            namespaces=[None],
            identity="me",
            priority=-100,
            on_change=on_change,
            poll=0.05,
        )
        task = asyncio.ensure_future(monitor.run())
        await asyncio.sleep(0.2)
        assert roles == []  # its own heartbeat is not there yet: it may not act
        now = datetime.datetime.now(datetime.UTC)
        kube.peers = {"me": {"priority": -100, "lifetime": 60, "lastseen": now.isoformat()}}
        await asyncio.sleep(0.02)
        assert roles == []  # one clear reading is not enough
        await asyncio.sleep(0.2)
        assert roles == [True]
        kube.peers["older"] = {"priority": -50, "lifetime": 60, "lastseen": now.isoformat()}
        await asyncio.sleep(0.1)
        assert roles == [True, False]
        task.cancel()

    asyncio.run(main())
