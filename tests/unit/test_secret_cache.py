"""The managed-Secret cache: what the watch said about each Secret, small, and pruned
after a re-listing only within the watch that re-listed."""

from __future__ import annotations

from typing import Any

from secretsync.engine import secretcache

KEY = b"k" * 32


def body(name: str, *, owner: str = "uid-1", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": "7",
            "labels": {"app.kubernetes.io/managed-by": "secretsync", **labels},
            "annotations": {"secretsync.io/owner": name},
            "ownerReferences": [{"uid": owner}],
        },
        "type": "Opaque",
        "data": {"a": "dmFsdWU="},
    }


def test_a_state_knows_its_labels_and_owners_without_keeping_their_values() -> None:
    state = secretcache.state_of(body("s", team="a"), KEY, seen=1.0)
    assert state.covers(labels={"team": "a"}, annotations={"secretsync.io/owner": "s"})
    assert not state.covers(labels={"team": "b"}, annotations={})
    assert state.owned_by(("uid-1",))
    assert not state.owned_by(())
    assert not state.owned_by(("uid-2",))
    assert b"value" not in repr(state).encode()


def test_a_namespaces_relisting_prunes_only_that_namespaces_entries() -> None:
    cache = secretcache.SecretCache()
    for ns in ("a", "b"):
        cache.put(ns, "gone", secretcache.state_of(body("gone"), KEY, seen=1.0))
        cache.put(ns, "kept", secretcache.state_of(body("kept"), KEY, seen=1.0))
    # Namespace a's watch re-lists (after a 410): "kept" is repeated, "gone" is not.
    cache.listed(100.0, "a")
    cache.put("a", "kept", secretcache.state_of(body("kept"), KEY, seen=100.0))
    assert cache.prune(100.0 + secretcache.LISTING_SETTLE + 1) == 1
    assert cache.get("a", "gone") is None
    assert cache.get("a", "kept") is not None
    # Namespace b did not re-list: its entries stand (before, every entry older than
    # a's listing was dropped, and b's next refreshes read their Secrets again).
    assert cache.get("b", "gone") is not None
    assert cache.get("b", "kept") is not None


def test_a_cluster_wide_relisting_prunes_every_namespace() -> None:
    cache = secretcache.SecretCache()
    cache.put("a", "gone", secretcache.state_of(body("gone"), KEY, seen=1.0))
    cache.put("b", "gone", secretcache.state_of(body("gone"), KEY, seen=1.0))
    cache.listed(100.0)
    assert cache.prune(100.0 + secretcache.LISTING_SETTLE + 1) == 2
    assert len(cache) == 0
