"""The pure parts of the benchmarks (bench/): the layout of SecretSyncs over remote
secrets, percentiles, the quiet phase of a refresh period, profile summaries, verdicts."""

from __future__ import annotations

import collections

import pytest

from bench import profile, report
from bench.scenarios.common import largest_gap_middle, next_boundary, percentile
from bench.sizes import FULL, SMOKE
from bench.world import Layout


@pytest.mark.parametrize(("syncs", "unique"), [(1000, 500), (10_000, 500), (50, 25), (200, 25)])
def test_every_sync_reads_two_keys_and_every_key_is_read_equally(syncs: int, unique: int) -> None:
    layout = Layout(prefix="b", namespaces=5 if unique == 25 else 10, syncs=syncs, unique=unique)
    reads = layout.reads()
    assert len(reads) == syncs
    uses: collections.Counter[str] = collections.Counter()
    for (namespace, _), (first, second) in reads.items():
        assert first != second
        assert first.startswith(f"{namespace}/")
        assert second.startswith(f"{namespace}/")
        uses.update((first, second))
    assert set(uses) == set(layout.all_keys())
    assert set(uses.values()) == {2 * syncs // unique}


def test_the_steady_state_call_target_is_a_twentieth_of_the_keys_plus_one_per_store() -> None:
    assert FULL.steady_call_target == 25 + 10
    assert SMOKE.steady_call_target == 2 + 5
    assert FULL.churned == 25


def test_percentiles_are_observed_values_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]
    assert percentile(values, 50) == 100
    assert percentile(values, 99) == 198
    assert percentile([3.0], 99) == 3.0


def test_the_quiet_phase_is_the_middle_of_the_longest_gap_modulo_the_period() -> None:
    assert largest_gap_middle([1, 2, 3, 31, 32.5], 30) == pytest.approx(17.0)
    # The longest gap wraps around the end of the period: from 25 to 5 of the next one.
    assert largest_gap_middle([5, 10, 15, 20, 25], 30) == pytest.approx(0.0)
    assert largest_gap_middle([], 30) == 0.0


def test_the_next_boundary_is_strictly_later_and_in_phase() -> None:
    assert next_boundary(100.0, 30.0, 5.0) == 125.0
    assert next_boundary(95.0, 30.0, 5.0) == 125.0
    assert next_boundary(94.0, 30.0, 5.0) == 95.0


def test_a_profile_summary_shares_self_and_inclusive_time() -> None:
    collapsed = "\n".join(
        [
            "main (a.py:1);work (b.py:2);read (ssl.py:3) 3",
            "main (a.py:1);log (logging/__init__.py:9) 1",
        ]
    )
    text = profile.summarise(collapsed)
    assert "4 samples" in text
    assert "75.0%  read (ssl.py)" in text
    assert "100.0%  main (a.py)" in text


def test_a_missed_target_is_reported_not_met_and_a_wrong_result_fails_the_checks() -> None:
    results = {
        "scenarios": {
            "scale": {
                "syncs": 10_000,
                "peak_rss_mib": 333.0,
                "rss_before_mib": 115.0,
                "rss_per_sync_kib": 3.9,
                "all_ready_and_right": True,
                "pending": 0,
                "rest": {"rss_mib": 330.0},
            },
            "cold_start": {
                "syncs": 1000,
                "ready_s": 30.0,
                "apply_s": 29.0,
                "unique_remote_secrets": 500,
                "all_ready_and_right": False,
                "pending": 3,
            },
        }
    }
    verdicts = {t["name"]: t["met"] for t in report.targets(results)}
    assert verdicts == {
        "peak RSS, N = 10,000": False,
        "operator state per SecretSync": True,
        "cold start, N = 1,000": False,
    }
    failed = [c["name"] for c in report.checks(results, {"cold", "scale"}) if not c["ok"]]
    assert failed == ["cold start: every SecretSync Ready with the right data"]
