"""The provider conformance suite: the cases every backend passes, built in or plug-in.

Each case reads through the Backend and SecretsClient protocols only, as the engine does,
and applies `property` and `dataFrom.extract` with the engine's own functions
(secretsync.engine.values). A case that needs a capability the target lacks is skipped
with the reason; pytest reports it as skipped, never as passed. After every case that
passed, the kit's plug-in also fails it if a seeded value or the login's credential
reached a log record (at DEBUG) or the text of an error the backend returned or raised.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import re
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import pytest

from secretsync.engine import values
from secretsync.errors import (
    AccessDeniedError,
    ProviderConfigError,
    ProviderError,
    SecretNotFoundError,
)
from secretsync.models.remote import FindQuery, RemoteRef, RemoteValue
from secretsync.providers.base import SecretsClient
from secretsync.testing.kit import CheckedTarget, RecordingGate, leak_forms
from secretsync.testing.plugin import MARKER

T = TypeVar("T")

BATCH = 25  # keys in the batch cases: more than one call's worth for every AWS API
WHERE = "conformance"  # the SecretSync field the engine's value functions name in errors


def secret(label: str) -> str:
    """A value no other case uses, long enough for the leak check to find it anywhere."""
    return f"{label}-{uuid.uuid4().hex[:16]}"


def value_of(result: RemoteValue | ProviderError) -> RemoteValue:
    """The value, or a failure naming the error (whose message never holds a value)."""
    if not isinstance(result, RemoteValue):
        pytest.fail(f"expected a value, got {type(result).__name__}: {result}")
    return result


def with_client(
    target: CheckedTarget,
    use: Callable[[SecretsClient], Awaitable[T]],
    gate: RecordingGate | None = None,
) -> T:
    """Log in as the target's identity, run `use` with a fresh client, close it."""
    return target.run(use, gate)


def fetch(
    target: CheckedTarget, refs: Sequence[RemoteRef], gate: RecordingGate | None = None
) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
    """fetch() in one client; the errors it returns are kept for the leak check."""
    got = with_client(target, lambda client: client.fetch(refs), gate)
    target.errors.extend(v for v in got.values() if isinstance(v, ProviderError))
    return got


def versions(
    target: CheckedTarget, refs: Sequence[RemoteRef], gate: RecordingGate | None = None
) -> Mapping[RemoteRef, str]:
    return with_client(target, lambda client: client.versions(refs), gate)


def keys_found(target: CheckedTarget, query: FindQuery) -> set[str]:
    refs = with_client(target, lambda client: client.find(query))
    return {ref.key for ref in refs}


def findable(target: CheckedTarget) -> tuple[str, set[str]]:
    """A fresh prefix holding db-a, db-b, nested/db-c and other; a sibling prefix holds db-z."""
    prefix = target.prefix()
    keys = {prefix + name for name in ("db-a", "db-b", "nested/db-c", "other")}
    for key in sorted(keys):
        target.put(key, secret("found"))
    target.put(target.prefix() + "db-z", secret("elsewhere"))
    return prefix, keys


def seed_batch(target: CheckedTarget) -> dict[RemoteRef, str]:
    """BATCH keys under one fresh prefix, each with a value of its own."""
    prefix = target.prefix()
    seeded = {RemoteRef(f"{prefix}batch-{i:02d}"): secret(f"value-{i:02d}") for i in range(BATCH)}
    for ref, text in seeded.items():
        target.put(ref.key, text)
    return seeded


@pytest.mark.usefixtures("secretsync_target")
class ProviderConformance:
    """Subclass it in a test module (its name must start with "Test") and define a
    `secretsync_provider` fixture returning a ConformanceTarget; pytest then runs every
    case against it (parametrise the fixture to run them against several targets).

        class TestMyProvider(ProviderConformance):
            pass

    docs/providers/plugins.md says what each case proves.
    """

    pytestmark = getattr(pytest.mark, MARKER)

    # --- values -----------------------------------------------------------------------

    def test_plain_value_is_read_as_utf8_text(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        key, text = t.prefix() + "plain", secret("s3cr3t-plain-välue")
        t.put(key, text)

        got = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])

        assert got.value == t.stored(text)
        assert not got.is_binary
        assert got.version

    def test_json_value_round_trips_byte_for_byte(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        key = t.prefix() + "json"
        # Odd spacing, key order and escapes: the engine extracts properties from these exact
        # bytes (a map-shaped store says, through stored_bytes(), what it gives back instead).
        password = secret('p\\u00e4ss\\"word')
        text = f'{{"user":  "app", "password": "{password}", "a": [1, 2]}}\n'
        t.put(key, text)

        got = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])

        assert got.value == t.stored(text)

    def test_a_json_property_is_selected_by_the_engine(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        key, password = t.prefix() + "db", secret("pässword")
        t.remember(password)
        t.put(key, json.dumps({"username": "app", "password": password, "host": "db:5432"}))

        got = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])

        assert values.select(got, "password", where=WHERE, key=key) == password.encode()
        assert values.select(got, "host", where=WHERE, key=key) == b"db:5432"
        assert values.select(got, None, where=WHERE, key=key) == got.value

    def test_binary_value_is_read_as_bytes(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        if not t.capabilities.binary:
            pytest.skip(f"{t.name} stores text only (capabilities.binary is False)")
        key = t.prefix() + "binary"
        data = bytes([0, 255, 1, 128, 10]) + b"not utf-8: \xc3\x28" + uuid.uuid4().bytes
        t.put(key, data)

        got = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])

        assert got.value == data
        assert got.is_binary

    def test_a_whole_map_arrives_as_its_json_object(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        key = t.prefix() + "map"
        data = {"username": "app", "password": secret("hunter2"), "host": "db.internal:5432"}
        t.put_map(key, data)

        got = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])

        assert json.loads(got.value) == data
        # dataFrom.extract, as the engine applies it: every top-level key a Secret key.
        assert values.extract(got, None, where=WHERE, key=key) == {
            k: v.encode() for k, v in data.items()
        }

    # --- versions ---------------------------------------------------------------------

    def test_a_pinned_version_reads_that_version_or_is_refused(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        key, first_text, second_text = t.prefix() + "versioned", secret("first"), secret("second")
        t.put(key, first_text)
        first = value_of(fetch(t, [RemoteRef(key)])[RemoteRef(key)])
        assert first.value == t.stored(first_text)
        t.put(key, second_text)
        # Where no versions are kept, any pinned version must be refused for that ref:
        # never the current value under a version the user pinned.
        pinned = RemoteRef(key, first.version if t.capabilities.versions else "1")
        current = RemoteRef(key)

        got = fetch(t, [pinned, current])

        assert value_of(got[current]).value == t.stored(second_text)
        if t.capabilities.versions:
            assert value_of(got[pinned]).value == t.stored(first_text)
            assert value_of(got[pinned]).version == first.version
            assert value_of(got[current]).version != first.version
        else:
            assert isinstance(got[pinned], ProviderError), got[pinned]

    def test_versions_match_what_fetch_read(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        prefix = t.prefix()
        refs = [RemoteRef(prefix + "one"), RemoteRef(prefix + "two")]
        for ref in refs:
            t.put(ref.key, secret("steady"))
        fetched = {ref: value_of(v).version for ref, v in fetch(t, refs).items()}
        checked = versions(t, refs)
        t.put(refs[0].key, secret("changed"))
        refetched = {ref: value_of(v).version for ref, v in fetch(t, refs).items()}

        assert dict(checked) == fetched
        assert dict(versions(t, refs)) == refetched  # whether or not the version moved

    def test_a_new_value_moves_its_version_and_no_other(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        if not (t.capabilities.versions or t.capabilities.change_versions):
            pytest.skip(
                f"{t.name} keeps no versions (capabilities.versions and change_versions are "
                "False): the cheap change check cannot see a new value, the refresh timer "
                "brings it"
            )
        prefix = t.prefix()
        changing, steady = RemoteRef(prefix + "changing"), RemoteRef(prefix + "steady")
        for ref in (changing, steady):
            t.put(ref.key, secret("one"))
        before = versions(t, [changing, steady])
        t.put(changing.key, secret("two"))

        after = versions(t, [changing, steady])

        assert after[changing] != before[changing]
        assert after[changing] == value_of(fetch(t, [changing])[changing]).version
        assert after[steady] == before[steady]

    # --- find -------------------------------------------------------------------------

    def test_find_by_path_prefix_returns_every_key_under_it(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        if not t.capabilities.find:
            pytest.skip(f"{t.name} cannot list keys (capabilities.find is False)")
        prefix, keys = findable(t)

        assert keys_found(t, FindQuery(path=prefix)) == keys

    def test_find_by_path_and_name_regexp_keeps_only_matching_names(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        if not t.capabilities.find:
            pytest.skip(f"{t.name} cannot list keys (capabilities.find is False)")
        prefix, keys = findable(t)

        found = keys_found(t, FindQuery(path=prefix, name_regexp="db-[a-c]$"))

        assert found == {k for k in keys if re.search("db-[a-c]$", k)}
        assert len(found) == 3

    def test_find_by_tags_keeps_only_keys_with_every_tag_or_is_refused(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        if not t.capabilities.find:
            pytest.skip(f"{t.name} cannot list keys (capabilities.find is False)")
        prefix, _ = findable(t)
        query = FindQuery(path=prefix, tags=(("env", "prod"), ("team", "a")))
        if not t.capabilities.find_tags:
            # Ignoring the tags would sync more than the SecretSync asked for.
            with pytest.raises(ProviderConfigError):
                keys_found(t, query)
            return
        tags = {
            "db-a": {"env": "prod", "team": "a"},
            "db-b": {"env": "dev", "team": "a"},
            "nested/db-c": {"env": "prod", "team": "a"},
            "other": {"env": "prod"},
        }
        for name, kept in tags.items():
            t.put_tags(prefix + name, kept)

        assert keys_found(t, query) == {prefix + "db-a", prefix + "nested/db-c"}

    # --- failures of one ref ----------------------------------------------------------

    def test_not_found_fails_that_ref_only(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        prefix, here = t.prefix(), secret("here")
        present, missing = RemoteRef(prefix + "present"), RemoteRef(prefix + "missing")
        t.put(present.key, here)

        got = fetch(t, [present, missing])
        checked = versions(t, [present, missing])

        assert value_of(got[present]).value == t.stored(here)
        assert isinstance(got[missing], SecretNotFoundError), got[missing]
        assert present in checked
        assert missing not in checked  # left out: the engine fetches it and learns why

    def test_denied_key_is_access_denied(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        denied_key = t.denied_key()
        if denied_key is None:
            pytest.skip(f"{t.name}'s service does not refuse a key here (denied_key() is None)")
        denied, allowed, ok = RemoteRef(denied_key), RemoteRef(t.prefix() + "allowed"), secret("ok")
        t.put(allowed.key, ok)

        got = fetch(t, [denied, allowed])
        checked = versions(t, [denied, allowed])

        assert isinstance(got[denied], AccessDeniedError), got[denied]
        assert value_of(got[allowed]).value == t.stored(ok)
        assert denied not in checked
        assert allowed in checked

    # --- batches and concurrency ------------------------------------------------------

    def test_a_batch_of_25_keys_comes_back_whole(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        seeded = seed_batch(t)
        refs = list(seeded)
        gate = RecordingGate()

        got = fetch(t, refs + refs[:3], gate)  # duplicates are read once

        assert set(got) == set(refs)
        assert {ref: value_of(got[ref]).value for ref in refs} == {
            ref: t.stored(text) for ref, text in seeded.items()
        }
        assert gate.seen, "the client reported none of its calls to the gate"
        assert all(outcome == "success" for _, outcome in gate.seen), gate.seen
        budget = t.capabilities.fetch_batch
        if budget is not None:
            expected = math.ceil(BATCH / budget.per_call)
            assert gate.seen == [(budget.operation, "success")] * expected, gate.seen

    def test_versions_of_a_batch_of_25_keys_match_fetch_in_few_calls(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        refs = list(seed_batch(t))
        fetched = {ref: value_of(v).version for ref, v in fetch(t, refs).items()}
        gate = RecordingGate()

        got = versions(t, refs + refs[:3], gate)

        assert dict(got) == fetched
        assert all(outcome == "success" for _, outcome in gate.seen), gate.seen
        budget = t.capabilities.versions_batch
        if budget is not None:
            expected = math.ceil(BATCH / budget.per_call)
            assert gate.seen == [(budget.operation, "success")] * expected, gate.seen

    def test_one_client_serves_concurrent_fetches(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        prefix = t.prefix()
        seeded = {RemoteRef(f"{prefix}shared-{i}"): secret(f"shared-{i}") for i in range(3)}
        for ref, text in seeded.items():
            t.put(ref.key, text)
        refs = list(seeded)

        async def many(
            client: SecretsClient,
        ) -> list[Mapping[RemoteRef, RemoteValue | ProviderError]]:
            # The engine shares one client among the rounds of an identity.
            return list(await asyncio.gather(*(client.fetch(refs) for _ in range(5))))

        rounds = with_client(t, many)

        expected = {ref: t.stored(text) for ref, text in seeded.items()}
        for got in rounds:
            assert {ref: value_of(v).value for ref, v in got.items()} == expected

    # --- the session and the client ---------------------------------------------------

    def test_validate_accepts_the_targets_identity(self, secretsync_target: CheckedTarget) -> None:
        gate = RecordingGate()

        with_client(secretsync_target, lambda client: client.validate(), gate)

        if secretsync_target.capabilities.validate_calls:
            assert gate.seen, "validate() made no call through the gate"
        assert all(outcome == "success" for _, outcome in gate.seen), gate.seen

    def test_a_session_names_its_identity_without_its_credentials(
        self, secretsync_target: CheckedTarget
    ) -> None:
        t = secretsync_target
        backend = t.target.backend()
        material = t.material()

        session = asyncio.run(backend.login(material))

        assert isinstance(backend.name, str)
        assert backend.name
        assert isinstance(backend.endpoint, str)
        assert backend.endpoint
        assert isinstance(session.identity, str)
        assert session.identity
        assert session.expires_at is None or session.expires_at > time.time()
        shown = f"{session.identity}\n{session!r}\n{backend.endpoint}"
        credentials = [(material.service_account_token or "").encode(), *material.secrets.values()]
        shown_forms = [
            f for c in credentials for f in leak_forms(c) if f.decode("utf-8", "replace") in shown
        ]
        assert shown_forms == [], "the session shows a credential of the login"

    def test_close_releases_what_the_client_opened(self, secretsync_target: CheckedTarget) -> None:
        t = secretsync_target
        key, text = t.prefix() + "closing", secret("closing")
        t.put(key, text)

        async def use(client: SecretsClient) -> None:
            await client.validate()
            got = value_of((await client.fetch([RemoteRef(key)]))[RemoteRef(key)])
            assert got.value == t.stored(text)

        gc.collect()  # what earlier cases left to the collector is not this case's
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with_client(t, use)
            with_client(t, lambda client: asyncio.sleep(0))  # closed without a call
            gc.collect()

        unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        unclosed += [text for text in t.watch.texts if "Unclosed" in text]
        assert unclosed == [], "close() left resources open"
