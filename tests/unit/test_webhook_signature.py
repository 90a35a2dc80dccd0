"""The webhook's pure checks: the signature header, the clock skew and the body schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretsync.events import webhook
from secretsync.events.webhook import RefusedError

KEY = b"0123456789abcdef0123456789abcdef"
BODY = (
    b'{"store": {"kind": "SecretStore", "namespace": "team-a", "name": "team-a-aws"}, '
    b'"keys": ["team-a/db"]}'
)
NOW = 1_700_000_000


def refused(header: str | None, body: bytes = BODY, key: bytes = KEY, now: float = NOW) -> str:
    """The discard reason verify() gives (it must refuse with 401)."""
    with pytest.raises(RefusedError) as info:
        webhook.verify(header, body, key, now=now)
    assert info.value.status == 401
    return info.value.reason


def test_the_signature_is_the_one_openssl_computes() -> None:
    # printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac "$KEY" -hex (the README's recipe)
    assert webhook.sign(KEY, BODY, timestamp=NOW) == (
        "t=1700000000,v1=dd7aec7ec72772a891f4cfb70a28f9341c0da6fd6a9457e52ca3b85279ee5bdd"
    )


def test_a_request_signed_with_the_key_is_accepted() -> None:
    webhook.verify(webhook.sign(KEY, BODY, timestamp=NOW), BODY, KEY, now=NOW)


def test_uppercase_hex_is_accepted() -> None:
    t, _, sig = webhook.sign(KEY, BODY, timestamp=NOW).partition(",v1=")
    webhook.verify(f"{t},v1={sig.upper()}", BODY, KEY, now=NOW)


def test_a_request_signed_with_another_key_is_refused() -> None:
    header = webhook.sign(b"another-key-of-32-bytes-00000000", BODY, timestamp=NOW)
    assert refused(header) == "bad-signature"


def test_a_changed_body_or_timestamp_breaks_the_signature() -> None:
    header = webhook.sign(KEY, BODY, timestamp=NOW)
    assert refused(header, body=BODY.replace(b"team-a/db", b"team-a/dc")) == "bad-signature"
    moved = header.replace(f"t={NOW}", f"t={NOW + 1}")
    assert refused(moved, now=NOW + 1) == "bad-signature"


def test_any_one_of_several_signatures_may_match_while_the_key_rotates() -> None:
    old = webhook.signature(b"old-key-old-key-old-key", BODY, timestamp=str(NOW))
    new = webhook.signature(KEY, BODY, timestamp=str(NOW))
    webhook.verify(f"t={NOW},v1={old},v1={new}", BODY, KEY, now=NOW)
    webhook.verify(f"t={NOW},v1={new},v1={old}", BODY, KEY, now=NOW)
    assert refused(f"t={NOW},v1={old},v1={old}") == "bad-signature"


def test_unknown_schemes_beside_v1_are_ignored() -> None:
    header = webhook.sign(KEY, BODY, timestamp=NOW) + ",v0=whatever,v2=later"
    webhook.verify(header, BODY, KEY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(offset: int) -> None:
    webhook.verify(webhook.sign(KEY, BODY, timestamp=NOW + offset), BODY, KEY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_timestamps_further_off_are_refused_as_stale(offset: int) -> None:
    assert refused(webhook.sign(KEY, BODY, timestamp=NOW + offset)) == "stale"


def test_an_old_request_with_a_wrong_signature_is_a_bad_signature_not_a_replay() -> None:
    header = webhook.sign(b"another-key-of-32-bytes-00000000", BODY, timestamp=NOW - 3600)
    assert refused(header) == "bad-signature"


SIG = "a" * 64


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing X-Secretsync-Signature header"),
        ("", "missing X-Secretsync-Signature header"),
        ("garbage", "malformed X-Secretsync-Signature header"),
        (f"v1={SIG}", "has no t=<unix seconds>"),
        (f"t={NOW}", "has no v1=<signature>"),
        (f"t=soon,v1={SIG}", "t must be one integer"),
        (f"t=-5,v1={SIG}", "t must be one integer"),
        (f"t={NOW},t={NOW},v1={SIG}", "t must be one integer"),
        (f"t={NOW},v1=abc", "v1 must be 64 hex digits"),
        (f"t={NOW},v1={'g' * 64}", "v1 must be 64 hex digits"),
        (f"t={NOW}," + ",".join([f"v1={SIG}"] * 9), "more than 8 v1 signatures"),
    ],
)
def test_malformed_headers_are_refused_with_a_clear_message(
    header: str | None, message: str
) -> None:
    with pytest.raises(RefusedError, match=message) as info:
        webhook.parse_header(header)
    assert (info.value.status, info.value.reason) == (401, "bad-signature")


def test_a_valid_body_becomes_a_notification() -> None:
    assert webhook.parse_body(BODY) == webhook.Notification(
        kind="SecretStore", namespace="team-a", name="team-a-aws", keys=("team-a/db",)
    )


@pytest.mark.parametrize("namespace", [None, "", "absent"])
def test_a_cluster_store_has_no_namespace(namespace: str | None) -> None:
    store: dict[str, Any] = {"kind": "ClusterSecretStore", "name": "shared"}
    if namespace != "absent":
        store["namespace"] = namespace
    doc = {"store": store, "keys": ["a", "b"], "comment": "unknown fields are ignored"}
    notification = webhook.parse_body(json.dumps(doc).encode())
    assert (notification.kind, notification.namespace, notification.keys) == (
        "ClusterSecretStore",
        "",
        ("a", "b"),
    )
    assert notification.store == "ClusterSecretStore shared"


MARK = "MARK-7f3c"  # must never come back in an error message
GOOD_STORE = {"kind": "SecretStore", "namespace": "team-a", "name": "s"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json " + MARK.encode(), "the body is not a JSON document"),
        (b"\xff\xfe" + MARK.encode(), "the body is not a JSON document"),
        (b"[" * 100_000, "the body is not a JSON document"),
        ([MARK], "must be a JSON object with `store` and `keys`"),
        ({"keys": [MARK]}, "store must be an object"),
        ({"store": MARK, "keys": ["k"]}, "store must be an object"),
        ({"store": {**GOOD_STORE, "kind": MARK}, "keys": ["k"]}, "store.kind must be"),
        ({"store": {**GOOD_STORE, "name": ""}, "keys": ["k"]}, "store.name must be a non-empty"),
        ({"store": {**GOOD_STORE, "name": 7}, "keys": ["k"]}, "store.name must be a non-empty"),
        ({"store": {**GOOD_STORE, "name": "n" * 254}, "keys": ["k"]}, "at most 253"),
        (
            {"store": {"kind": "SecretStore", "name": MARK}, "keys": ["k"]},
            "store.namespace must be a non-empty string",
        ),
        (
            {
                "store": {"kind": "ClusterSecretStore", "namespace": MARK, "name": "c"},
                "keys": ["k"],
            },
            "store.namespace must be absent for a ClusterSecretStore",
        ),
        ({"store": GOOD_STORE}, "keys must be a list of 1 to 100"),
        ({"store": GOOD_STORE, "keys": []}, "keys must be a list of 1 to 100"),
        ({"store": GOOD_STORE, "keys": MARK}, "keys must be a list of 1 to 100"),
        ({"store": GOOD_STORE, "keys": ["k"] * 101}, "keys must be a list of 1 to 100"),
        ({"store": GOOD_STORE, "keys": ["k", 5]}, r"keys\[1\] must be a string of 1 to 2048"),
        ({"store": GOOD_STORE, "keys": [""]}, r"keys\[0\] must be a string"),
        ({"store": GOOD_STORE, "keys": [MARK + "k" * 2048]}, r"keys\[0\] must be a string"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_field_without_quoting_it(
    body: Any, message: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RefusedError, match=message) as info:
        webhook.parse_body(raw)
    assert (info.value.status, info.value.reason) == (400, "malformed")
    assert MARK not in info.value.message


def test_the_limits_accept_their_edges() -> None:
    doc = {"store": {**GOOD_STORE, "name": "n" * 253}, "keys": ["k" * 2048] * 100}
    notification = webhook.parse_body(json.dumps(doc).encode())
    assert len(notification.keys) == 100
