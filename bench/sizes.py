"""The two sizes a run can have: `full` (the figures in docs/benchmarks.md) and `smoke`
(a few minutes in CI, to keep every scenario working; it asserts correctness, not speed)."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True, kw_only=True)
class Size:
    """How big each scenario is."""

    name: str
    namespaces: int  # each with its own ServiceAccount, IAM role and SecretStore
    syncs: int  # N: SecretSyncs of the cold start, steady state and churn
    unique: int  # U: unique AWS secrets they read (2 keys per SecretSync)
    refresh: float  # refreshInterval of those SecretSyncs, seconds
    steady_cycles: int
    churn_cycles: int
    churn_fraction: float  # of the U remote secrets, changed per churn cycle
    scale_syncs: int
    rest_seconds: float  # how long the scale scenario watches the operator at rest
    rotations: int  # per rotation path
    check_rotations: int  # per change-detection path (each takes about the check interval)
    change_check: str  # changeCheckInterval of the change-detection stores
    # The cost of change checks at scale: the N SecretSyncs' stores get this
    # changeCheckInterval for `check_window` seconds, and the calls are counted.
    check_interval: float
    check_window: float
    # The biggest scale run: once on one process, once on `replicas` sharded replicas.
    huge_syncs: int
    huge_namespaces: int
    huge_unique: int
    replicas: int
    shards: int

    @property
    def churned(self) -> int:
        """Remote secrets changed per churn cycle."""
        return max(1, round(self.unique * self.churn_fraction))

    @property
    def steady_call_target(self) -> int:
        """Secrets Manager calls a steady-state cycle may make: ceil(U/20) plus one per store."""
        return math.ceil(self.unique / 20) + self.namespaces


FULL = Size(
    name="full",
    namespaces=10,
    syncs=1000,
    unique=500,
    refresh=60.0,  # the comparison workload's (docs/benchmarks.md)
    steady_cycles=5,
    churn_cycles=5,
    churn_fraction=0.05,
    scale_syncs=10_000,
    rest_seconds=60.0,
    rotations=200,
    check_rotations=100,
    change_check="1s",
    check_interval=10.0,
    check_window=60.0,
    huge_syncs=30_000,
    huge_namespaces=30,
    huge_unique=600,
    replicas=3,
    shards=12,
)

SMOKE = Size(
    name="smoke",
    namespaces=5,
    syncs=50,
    unique=25,
    refresh=8.0,
    steady_cycles=2,
    churn_cycles=2,
    churn_fraction=0.05,
    scale_syncs=200,
    rest_seconds=5.0,
    rotations=10,
    check_rotations=5,
    change_check="1s",
    check_interval=2.0,
    check_window=8.0,
    huge_syncs=300,
    huge_namespaces=6,
    huge_unique=30,
    replicas=3,
    shards=6,
)

SIZES = {s.name: s for s in (FULL, SMOKE)}
