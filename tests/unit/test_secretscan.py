"""tools/secretscan.py's verdicts on scans written here (CI runs it on the tree)."""

from __future__ import annotations

from typing import Any

from tools import secretscan


def doc(*entries: tuple[str, str, str, bool | None]) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    for name, kind, digest, reviewed in entries:
        entry: dict[str, Any] = {"type": kind, "hashed_secret": digest, "line_number": 3}
        if reviewed is not None:
            entry["is_secret"] = reviewed
        results.setdefault(name, []).append(entry)
    return {"results": results}


def test_a_reviewed_false_positive_passes_wherever_its_line_moves() -> None:
    baseline = doc(("a.py", "Secret Keyword", "h1", False))
    found = doc(("a.py", "Secret Keyword", "h1", None))
    found["results"]["a.py"][0]["line_number"] = 40
    assert secretscan.check(found, baseline) == []


def test_a_new_finding_an_unreviewed_entry_and_a_real_secret_fail() -> None:
    baseline = doc(("a.py", "Secret Keyword", "h1", None), ("b.py", "AWS Access Key", "h2", True))
    found = doc(("c.py", "JSON Web Token", "h3", None))
    assert secretscan.check(found, baseline) == [
        "c.py:3: JSON Web Token: new (not in .secrets.baseline)",
        "a.py:3: Secret Keyword: in the baseline, not reviewed",
        "b.py:3: AWS Access Key: reviewed as a real secret",
    ]


def test_update_keeps_each_review_and_leaves_new_entries_unreviewed() -> None:
    baseline = doc(("a.py", "Secret Keyword", "h1", False))
    found = doc(("a.py", "Secret Keyword", "h1", None), ("a.py", "Secret Keyword", "h9", None))
    updated = secretscan.update(found, baseline)
    assert [e.get("is_secret") for e in updated["results"]["a.py"]] == [False, None]
