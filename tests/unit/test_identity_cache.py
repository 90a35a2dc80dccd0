"""One login per credential lifetime: cached per identity, renewed before expiry, single flight."""

from __future__ import annotations

import asyncio
import dataclasses

from secretsync.auth.identity import IdentityCache, IdentityKey


@dataclasses.dataclass(frozen=True)
class FakeSession:
    expires_at: float | None
    serial: int


def test_sessions_are_reused_until_shortly_before_they_expire() -> None:
    now = [0.0]
    cache: IdentityCache[FakeSession] = IdentityCache(clock=lambda: now[0])
    key = IdentityKey(store="SecretStore/a/s", generation=1, identity="serviceaccount:a/x")
    logins: list[int] = []

    async def login() -> FakeSession:
        logins.append(1)
        return FakeSession(expires_at=now[0] + 3600, serial=len(logins))

    async def scenario() -> list[int]:
        serials = [(await cache.session(key, login)).serial]
        now[0] = 2800  # within the last fifth of the hour: still valid, not yet due
        serials.append((await cache.session(key, login)).serial)
        now[0] = 2900  # due: renewed before expiry
        serials.append((await cache.session(key, login)).serial)
        return serials

    assert asyncio.run(scenario()) == [1, 1, 2]


def test_concurrent_syncs_share_one_login() -> None:
    cache: IdentityCache[FakeSession] = IdentityCache()
    key = IdentityKey(store="s", generation=1, identity="i")
    calls = 0

    async def login() -> FakeSession:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return FakeSession(expires_at=None, serial=calls)

    async def scenario() -> None:
        await asyncio.gather(*(cache.session(key, login) for _ in range(20)))

    asyncio.run(scenario())
    assert calls == 1


def test_identities_are_separate_and_forgotten_per_store() -> None:
    cache: IdentityCache[FakeSession] = IdentityCache()
    a = IdentityKey(store="s", generation=1, identity="serviceaccount:team-a/x")
    b = IdentityKey(store="s", generation=1, identity="serviceaccount:team-b/x")
    calls = 0

    async def login() -> FakeSession:
        nonlocal calls
        calls += 1
        return FakeSession(expires_at=None, serial=calls)

    async def scenario() -> None:
        await cache.session(a, login)
        await cache.session(b, login)
        cache.forget("s")
        await cache.session(a, login)

    asyncio.run(scenario())
    assert calls == 3
