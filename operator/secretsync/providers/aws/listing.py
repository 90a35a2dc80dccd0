"""Plans of ListSecrets queries that answer for many secret names at once (change checks).

ListSecrets takes a `name` filter of up to 10 values, each matched as a case-sensitive
prefix of the secret name, the values ORed, and answers 100 secrets a page. A plan
cuts the sorted names into subtrees of at most a page's worth, each as shallow as that
allows (one prefix for all of "team-a/" if it holds 100 names or fewer), and groups
consecutive subtrees, at most 10, into queries, for the fewest calls; a query with
fewer than 10 spends the spare values on longer prefixes. A query for n names takes
ceil(n/100) pages when its prefixes match nothing else, so U names that share a few
prefixes take about ceil(U/100) calls.

A prefix may also match secrets nobody asked for (every other secret under "prod/",
say), which costs pages; the names found are compared exactly. To keep that cost
bounded without knowing the account, every query carries a page budget: what the
next, narrower way of asking would cost for its names. A broad query that runs out
hands its unanswered names to exact queries (each name its own prefix, 10 a query),
and an exact query that runs out hands them to DescribeSecret, one call per name. In
the worst case (every watched name the prefix of hundreds of other secrets) that is a
small multiple of one DescribeSecret per name.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

FILTER_VALUES = 10  # a ListSecrets filter's limit on Values
PAGE_SIZE = 100  # ListSecrets' largest page
_WHOLE = 1 << 30  # a prefix length no name reaches: slices to the whole name


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listing:
    """One ListSecrets query: the secrets whose names start with any of `prefixes`."""

    prefixes: tuple[str, ...]
    names: frozenset[str]  # the names it is to answer for
    # Pages it may take; past them its unanswered names are asked the narrower way.
    budget: int
    exact: bool  # each prefix is one of the names: the narrowest listing there is


def exact(names: Sequence[str]) -> list[Listing]:
    """Queries giving each name as its own prefix, 10 a query; each may take as many
    pages as DescribeSecret would take calls for its names."""
    ordered = sorted(set(names))
    return [
        Listing(prefixes=tuple(chunk), names=frozenset(chunk), budget=len(chunk), exact=True)
        for chunk in (
            ordered[at : at + FILTER_VALUES] for at in range(0, len(ordered), FILTER_VALUES)
        )
    ]


def broad(names: Sequence[str]) -> list[Listing]:
    """Queries covering every name, as the module says. The names must be values the
    name filter accepts (then so is every prefix of them). No query's prefix covers a
    name of another query, unless one name begins another ("db" and "db-old")."""
    ordered = sorted(set(names))
    shared = [_common(a, b) for a, b in itertools.pairwise(ordered)]
    subtrees = _subtrees(shared, 0, len(ordered))
    listings: list[Listing] = []
    for group in _packed(subtrees):
        runs = _tightened(shared, group)
        chosen = ordered[runs[0][0] : runs[-1][1]]
        if len(runs) == len(chosen):  # a prefix per name: exact already
            listings.extend(exact(chosen))
            continue
        listings.append(
            Listing(
                prefixes=tuple(
                    ordered[first][: _depth(shared, first, last)] for first, last in runs
                ),
                names=frozenset(chosen),
                # What exact queries would cost: a broad query that needs more pages
                # than that is mostly reading secrets nobody asked for.
                budget=math.ceil(len(chosen) / FILTER_VALUES),
                exact=False,
            )
        )
    return listings


def _subtrees(shared: Sequence[int], first: int, last: int) -> list[tuple[int, int]]:
    """names[first:last] as consecutive runs of at most PAGE_SIZE names, each all the
    names below one prefix: a run too long is split, again and again."""
    out: list[tuple[int, int]] = []
    pending = [(first, last)] if last > first else []
    while pending:
        run = pending.pop()
        if run[1] - run[0] <= PAGE_SIZE:
            out.append(run)
        else:
            pending.extend(reversed(_split(shared, *run)))
    return out


def _packed(subtrees: Sequence[tuple[int, int]]) -> list[Sequence[tuple[int, int]]]:
    """Consecutive subtrees grouped into queries of at most 10, for the fewest calls
    (a query of n names takes ceil(n/100)); of equally cheap ways, the one with the
    most queries, whose spare values then lengthen prefixes."""
    # best[j]: (calls, -queries, where the last query starts) for the first j subtrees.
    best: list[tuple[int, int, int]] = [(0, 0, 0)]
    for j in range(1, len(subtrees) + 1):
        best.append(
            min(
                (
                    best[i][0] + math.ceil((subtrees[j - 1][1] - subtrees[i][0]) / PAGE_SIZE),
                    best[i][1] - 1,
                    i,
                )
                for i in range(max(0, j - FILTER_VALUES), j)
            )
        )
    groups: list[Sequence[tuple[int, int]]] = []
    j = len(subtrees)
    while j > 0:
        i = best[j][2]
        groups.append(subtrees[i:j])
        j = i
    return groups[::-1]


def _split(shared: Sequence[int], first: int, last: int) -> list[tuple[int, int]]:
    """A run of two or more names cut wherever neighbours share no more than all of
    them do, by the character after their common prefix: runs with longer prefixes."""
    depth = _depth(shared, first, last)
    cuts = [i + 1 for i in range(first, last - 1) if shared[i] <= depth]
    return list(itertools.pairwise([first, *cuts, last]))


def _tightened(shared: Sequence[int], runs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spare filter values spent on splitting the runs with the shortest prefixes:
    longer prefixes match fewer secrets nobody asked for, at no cost in calls."""
    out = list(runs)
    unsplittable: set[tuple[int, int]] = set()
    while len(out) < FILTER_VALUES:
        candidates = [r for r in out if r[1] - r[0] > 1 and r not in unsplittable]
        if not candidates:
            break
        widest = min(candidates, key=lambda r: (_depth(shared, *r), r[0] - r[1]))
        parts = _split(shared, *widest)
        if len(out) - 1 + len(parts) > FILTER_VALUES:
            unsplittable.add(widest)
            continue
        at = out.index(widest)
        out[at : at + 1] = parts
    return out


def _depth(shared: Sequence[int], first: int, last: int) -> int:
    """The length of the prefix names[first:last] all share (a run of one: its name)."""
    if last - first == 1:
        return _WHOLE
    return min(shared[first : last - 1])


def _common(a: str, b: str) -> int:
    """How many characters both strings begin with (a name filter matches characters,
    not path segments: "team-a/db" also matches "team-a/db-old")."""
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length
