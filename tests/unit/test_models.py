"""The compact models (slotted dataclasses validated by pydantic): what they accept, what
they share, and the JSON they write back."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest

from secretsync.models import status as st
from secretsync.models.sync import parse_spec

RAW_STATUS = {
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Synced",
            "message": "synced 2 keys",
            "lastTransitionTime": "2026-12-01T00:00:00Z",
            "observedGeneration": 3,
        }
    ],
    "observedGeneration": 3,
    "lastSyncTime": "2026-12-01T00:00:01Z",
    "syncedVersions": {"app/db": "v7"},
    "dataHash": "sha256:abc",
}


def test_a_status_round_trips_to_the_crds_camel_case_json() -> None:
    assert st.to_patch(st.parse(RAW_STATUS)) == RAW_STATUS


def test_statuses_that_differ_only_in_their_times_are_the_same() -> None:
    a = st.parse(RAW_STATUS)
    later = {**RAW_STATUS, "lastSyncTime": "2026-12-02T00:00:00Z"}
    b = st.parse(later)
    assert st.same_except_time(a, b)
    other = dataclasses.replace(b, data_hash="sha256:def")
    assert not st.same_except_time(a, other)


def test_an_unreadable_status_counts_as_empty() -> None:
    assert st.parse({"conditions": [{"type": "Ready"}]}) == st.Status()
    assert st.parse(None).ready() is None


def test_a_spec_is_validated_with_its_json_field_names_and_shares_its_defaults() -> None:
    a = parse_spec(
        {"storeRef": {"name": "aws"}, "data": [{"secretKey": "k", "remoteRef": {"key": "app/db"}}]}
    )
    b = parse_spec({"storeRef": {"name": "aws"}, "refreshInterval": "5m"})
    assert a.data[0].remote_ref.key == "app/db"
    assert a.target is b.target  # one default Target for every SecretSync that sets none
    assert a.rollout is b.rollout
    assert a.store_ref.name is b.store_ref.name  # recurring strings: one copy
    with pytest.raises(pydantic.ValidationError) as exc:
        parse_spec({"storeRef": {"name": "aws"}, "data": [{"secretKey": 3}]})
    assert exc.value.errors()[0]["loc"] == ("data", 0, "secretKey")


def test_compact_models_are_frozen() -> None:
    spec = parse_spec({"storeRef": {"name": "aws"}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.refresh_interval = "1m"  # type: ignore[misc]
