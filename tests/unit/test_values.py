"""Remote values become Secret keys the way a user expects, and bad data is named clearly."""

from __future__ import annotations

import datetime
import json

import pytest

from secretsync.engine import values
from secretsync.errors import ConfigError
from secretsync.models.remote import RemoteValue


def json_value(doc: object) -> RemoteValue:
    return RemoteValue(value=json.dumps(doc).encode(), version="v1")


def test_property_is_a_dotted_path_and_an_exact_key_wins() -> None:
    value = json_value({"db": {"user": "app", "ports": [5432]}, "a.b": "dotted"})
    assert values.select(value, "db.user", where="w", key="k") == b"app"
    assert values.select(value, "db.ports.0", where="w", key="k") == b"5432"
    assert values.select(value, "a.b", where="w", key="k") == b"dotted"
    assert values.select(value, "db", where="w", key="k") == b'{"user":"app","ports":[5432]}'


def test_missing_property_names_the_field_and_key_but_not_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        values.select(json_value({"password": "hunter2"}), "pass", where="spec.data[0]", key="db")
    assert str(err.value) == "spec.data[0]: property 'pass' does not exist in remote secret 'db'"
    assert "hunter2" not in str(err.value)


def test_extract_refuses_a_json_key_that_is_not_a_valid_secret_key() -> None:
    with pytest.raises(ConfigError, match=r"JSON key number 1 \(11 characters\) .* is not a valid"):
        values.extract(json_value({"db/password": "x"}), None, where="spec.dataFrom[0]", key="k")


def test_extract_returns_each_top_level_key() -> None:
    out = values.extract(json_value({"user": "app", "port": 5432}), None, where="w", key="k")
    assert out == {"user": b"app", "port": b"5432"}


def test_binary_values_are_kept_byte_for_byte_without_a_property() -> None:
    raw = bytes(range(256))
    assert (
        values.select(RemoteValue(value=raw, version="1", is_binary=True), None, where="w", key="k")
        == raw
    )


def test_duplicate_keys_from_data_and_data_from_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"'user' comes from both spec\.data\[0\] and spec\.dataFrom\[0\]"
    ):
        values.merge([("spec.data[0]", {"user": b"a"}), ("spec.dataFrom[0]", {"user": b"b"})])


def test_data_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(ConfigError, match="over the 1 MiB Secret limit"):
        values.check_size({"big": b"x" * (1024 * 1024)})


def test_found_names_become_valid_secret_keys() -> None:
    assert values.key_for_found("team-a/db-password") == "team-a_db-password"
    assert values.key_for_found("/app/prod/key") == "app_prod_key"


def test_property_and_extract_walk_an_already_parsed_document() -> None:
    """A SOPS YAML or dotenv document arrives parsed (RemoteValue.document): its value is
    the text `sops decrypt` prints, not JSON, and the tree is walked as JSON would be."""
    text = b"db:\n    password: s3cret\n    port: 5432\ndebug: false\n"
    tree = {"db": {"password": "s3cret", "port": 5432}, "debug": False}
    value = RemoteValue(value=text, version="7", document=tree)
    assert values.select(value, None, where="w", key="k") == text
    assert values.select(value, "db.password", where="w", key="k") == b"s3cret"
    assert values.select(value, "db.port", where="w", key="k") == b"5432"
    assert values.extract(value, "db", where="w", key="k") == {
        "password": b"s3cret",
        "port": b"5432",
    }
    assert values.extract(value, None, where="w", key="k") == {
        "db": b'{"password":"s3cret","port":5432}',
        "debug": b"false",
    }


def test_a_document_s_timestamps_and_raw_bytes_become_what_sops_prints() -> None:
    when = datetime.datetime(2026, 12, 1, 14, 0, tzinfo=datetime.UTC)
    tree = {"rotated": when, "raw": b"\xff\x00", "nested": {"at": when}}
    value = RemoteValue(value=b"", version="1", document=tree)
    assert values.select(value, "rotated", where="w", key="k") == b"2026-12-01T14:00:00Z"
    assert values.select(value, "raw", where="w", key="k") == b"\xff\x00"
    assert values.select(value, "nested", where="w", key="k") == b'{"at":"2026-12-01T14:00:00Z"}'
    # Bytes inside a map cannot be JSON: refused, never altered.
    nested = RemoteValue(value=b"", version="1", document={"m": {"raw": b"\xff\x00"}})
    assert values.select(nested, "m.raw", where="w", key="k") == b"\xff\x00"
    with pytest.raises(ConfigError, match="not UTF-8 text inside a map or list"):
        values.extract(nested, None, where="w", key="k")
