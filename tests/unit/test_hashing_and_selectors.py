"""The data hash is keyed and order-independent; label selectors match like Kubernetes'."""

from __future__ import annotations

from secretsync.engine.hashing import data_hash
from secretsync.engine.selectors import matches
from secretsync.models import duration


def test_data_hash_is_keyed_stable_and_unambiguous() -> None:
    a = data_hash(b"k1", {"user": b"app", "password": b"pw"})
    assert a == data_hash(b"k1", {"password": b"pw", "user": b"app"})
    assert a != data_hash(b"k2", {"user": b"app", "password": b"pw"})
    assert data_hash(b"k", {"ab": b"c"}) != data_hash(b"k", {"a": b"bc"})
    assert a.startswith("hmac-sha256:")
    assert "pw" not in a


def test_label_selectors() -> None:
    labels = {"team": "a", "env": "prod"}
    assert matches({}, labels)
    assert matches({"matchLabels": {"team": "a"}}, labels)
    assert not matches({"matchLabels": {"team": "b"}}, labels)
    assert matches(
        {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, labels
    )
    assert not matches({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, labels)


def test_durations() -> None:
    assert duration.parse("0", field="f") == 0
    assert duration.parse("1h30m", field="f") == 5400
    assert duration.parse("1.5s", field="f") == 1.5
