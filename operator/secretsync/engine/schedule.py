"""When a SecretSync is due: aligned refreshes (so a store's syncs batch together),
jittered per store (so stores spread out), and backoff after failures."""

from __future__ import annotations

import math
import random
import zlib

BACKOFF_START = 2.0
BACKOFF_CAP = 300.0


def phase(store: str, interval: float) -> float:
    """A stable offset in [0, interval) per store: stores spread, one store's syncs align."""
    return (zlib.crc32(store.encode()) % 10_000) / 10_000 * interval


def next_refresh(now: float, interval: float, store: str) -> float:
    """The next aligned refresh time strictly after now."""
    offset = phase(store, interval)
    periods = math.floor((now - offset) / interval) + 1
    return offset + periods * interval


def backoff(failures: int, interval: float, *, rng: random.Random | None = None) -> float:
    """Seconds before retrying after `failures` consecutive failures: exponential with full
    jitter, capped by the refresh interval (the timer would come anyway) and BACKOFF_CAP."""
    cap = min(BACKOFF_CAP, interval) if interval > 0 else BACKOFF_CAP
    ceiling = min(cap, BACKOFF_START * 2 ** max(failures - 1, 0))
    pick = (rng or random).uniform(ceiling / 2, ceiling)
    return max(pick, 0.5)
