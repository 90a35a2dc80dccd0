"""The conformance suite every provider backend passes, against the real services.

Each target (tests/harness/targets/) seeds its service and hands over a
backend and login material; the cases read through the SecretsClient
protocol only, as the engine does. Targets are looked up by name when a case
runs, so a target module that does not exist yet fails its cases rather than
hiding them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import pytest

from harness.devenv import DevEnv
from harness.targets import ConformanceTarget
from secretsync.errors import AccessDeniedError, ProviderError, SecretNotFoundError
from secretsync.models.remote import FindQuery, ObservingGate, RemoteRef, RemoteValue
from secretsync.providers.base import SecretsClient

pytestmark = pytest.mark.integration

TARGETS = ["aws-secretsmanager", "aws-parameterstore", "vault-kv2", "vault-kv1"]

# The calls a batch of BATCH keys must take, where the API batches (AWS).
BATCH = 25
BATCH_CALLS = {
    "aws-secretsmanager": ("BatchGetSecretValue", math.ceil(BATCH / 20)),
    "aws-parameterstore": ("GetParameters", math.ceil(BATCH / 10)),
}

# The calls versions() of the same BATCH keys must take, where the API lists or batches:
# one ListSecrets answers for a page of names that share a prefix.
VERSIONS_CALLS = {
    "aws-secretsmanager": ("ListSecrets", math.ceil(BATCH / 100)),
    "aws-parameterstore": ("GetParameters", math.ceil(BATCH / 10)),
}

T = TypeVar("T")


class Calls(ObservingGate):
    """A CallGate that remembers every (operation, outcome)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__(lambda operation, outcome: self.seen.append((operation, outcome)))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.seen if op == operation)


@pytest.fixture(scope="session")
def conformance_targets(env: DevEnv) -> Callable[[str], ConformanceTarget]:
    """Look a target up by name, importing its harness module on first use."""
    loaded: dict[str, dict[str, ConformanceTarget]] = {}

    def lookup(name: str) -> ConformanceTarget:
        module_name = f"harness.targets.{name.split('-', 1)[0]}"
        if module_name not in loaded:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                pytest.fail(f"{module_name} does not exist: target {name} has no implementation")
            loaded[module_name] = {t.name: t for t in module.targets(env)}
        by_name = loaded[module_name]
        if name not in by_name:
            pytest.fail(f"{module_name}.targets() offers {sorted(by_name)}, not {name}")
        return by_name[name]

    return lookup


@pytest.fixture(params=TARGETS)
def target(
    request: pytest.FixtureRequest, conformance_targets: Callable[[str], ConformanceTarget]
) -> ConformanceTarget:
    return conformance_targets(str(request.param))


def with_client(
    target: ConformanceTarget,
    use: Callable[[SecretsClient], Awaitable[T]],
    calls: Calls | None = None,
) -> T:
    """Log in as the target's identity, run `use` with a client, close it."""

    async def run() -> T:
        backend = target.backend()
        session = await backend.login(target.material())
        client = backend.client(session, calls if calls is not None else Calls())
        try:
            return await use(client)
        finally:
            await client.close()

    return asyncio.run(run())


def fetch(
    target: ConformanceTarget, refs: Sequence[RemoteRef], calls: Calls | None = None
) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
    return with_client(target, lambda client: client.fetch(refs), calls)


def stored(target: ConformanceTarget, value: str) -> bytes:
    return target.stored_bytes(value)


def keeps_versions(target: ConformanceTarget) -> bool:
    return target.supports_versions()


def value_of(result: RemoteValue | ProviderError) -> RemoteValue:
    """The value, or a failure naming the error (whose message never holds a value)."""
    if not isinstance(result, RemoteValue):
        pytest.fail(f"expected a value, got {type(result).__name__}: {result}")
    return result


def keys_found(target: ConformanceTarget, query: FindQuery) -> set[str]:
    refs = with_client(target, lambda client: client.find(query))
    return {ref.key for ref in refs}


def test_plain_value_is_read_as_utf8_text(target: ConformanceTarget) -> None:
    key = target.prefix() + "plain"
    target.put(key, "s3cr3t-plain-välue")

    got = value_of(fetch(target, [RemoteRef(key)])[RemoteRef(key)])

    assert got.value == stored(target, "s3cr3t-plain-välue")
    assert not got.is_binary
    assert got.version


def test_json_value_round_trips_byte_for_byte(target: ConformanceTarget) -> None:
    key = target.prefix() + "json"
    # Odd spacing, key order and escapes: the engine extracts properties from these exact bytes
    # (a map-shaped store says, through stored(), what it gives back instead).
    text = '{"user":  "app", "password": "p\\u00e4ss\\"word", "a": [1, 2]}\n'
    target.put(key, text)

    got = value_of(fetch(target, [RemoteRef(key)])[RemoteRef(key)])

    assert got.value == stored(target, text)


def test_binary_value_is_read_as_bytes(target: ConformanceTarget) -> None:
    if not target.supports_binary():
        pytest.skip(f"{target.name} stores text only")
    key = target.prefix() + "binary"
    data = bytes([0, 255, 1, 128, 10]) + b"not utf-8: \xc3\x28"
    target.put(key, data)

    got = value_of(fetch(target, [RemoteRef(key)])[RemoteRef(key)])

    assert got.value == data
    assert got.is_binary


def test_a_specific_version_reads_the_old_value(target: ConformanceTarget) -> None:
    if not keeps_versions(target):
        pytest.skip(f"{target.name} keeps no versions")
    key = target.prefix() + "versioned"
    target.put(key, "first")
    first = value_of(fetch(target, [RemoteRef(key)])[RemoteRef(key)])
    target.put(key, "second")

    pinned, current = RemoteRef(key, first.version), RemoteRef(key)
    got = fetch(target, [pinned, current])

    assert value_of(got[pinned]).value == stored(target, "first")
    assert value_of(got[pinned]).version == first.version
    assert value_of(got[current]).value == stored(target, "second")
    assert value_of(got[current]).version != first.version


def test_a_whole_map_arrives_as_its_json_object(target: ConformanceTarget) -> None:
    key = target.prefix() + "map"
    data = {"username": "app", "password": "hunter2", "host": "db.internal:5432"}
    target.put_map(key, data)

    got = value_of(fetch(target, [RemoteRef(key)])[RemoteRef(key)])

    assert json.loads(got.value) == data


@pytest.fixture
def findable(target: ConformanceTarget) -> tuple[str, set[str]]:
    """A fresh prefix holding db-a, db-b, nested/db-c and other; a sibling prefix holds db-z."""
    prefix = target.prefix()
    keys = {prefix + name for name in ("db-a", "db-b", "nested/db-c", "other")}
    for key in sorted(keys):
        target.put(key, "v")
    target.put(target.prefix() + "db-z", "v")
    return prefix, keys


def test_find_by_path_prefix_returns_every_key_under_it(
    target: ConformanceTarget, findable: tuple[str, set[str]]
) -> None:
    prefix, keys = findable

    assert keys_found(target, FindQuery(path=prefix)) == keys


def test_find_by_path_and_name_regexp_keeps_only_matching_names(
    target: ConformanceTarget, findable: tuple[str, set[str]]
) -> None:
    prefix, keys = findable

    found = keys_found(target, FindQuery(path=prefix, name_regexp="db-[a-c]$"))

    assert found == {k for k in keys if re.search("db-[a-c]$", k)}
    assert len(found) == 3


def test_not_found_fails_that_ref_only(target: ConformanceTarget) -> None:
    prefix = target.prefix()
    present, missing = RemoteRef(prefix + "present"), RemoteRef(prefix + "missing")
    target.put(present.key, "here")

    got = fetch(target, [present, missing])

    assert value_of(got[present]).value == stored(target, "here")
    assert isinstance(got[missing], SecretNotFoundError)
    assert "here" not in str(got[missing])


def test_denied_key_is_access_denied(target: ConformanceTarget) -> None:
    denied = target.denied_key()
    if denied is None:
        pytest.skip(f"{target.name}'s service does not enforce access here (denied_key() is None)")
    allowed = RemoteRef(target.prefix() + "allowed")
    target.put(allowed.key, "ok")

    got = fetch(target, [RemoteRef(denied), allowed])

    assert isinstance(got[RemoteRef(denied)], AccessDeniedError)
    assert value_of(got[allowed]).value == stored(target, "ok")


def test_a_batch_of_25_keys_comes_back_whole(target: ConformanceTarget) -> None:
    prefix = target.prefix()
    refs = [RemoteRef(f"{prefix}batch-{i:02d}") for i in range(BATCH)]
    for i, ref in enumerate(refs):
        target.put(ref.key, f"value-{i:02d}")
    calls = Calls()

    got = fetch(target, refs + refs[:3], calls)  # duplicates are read once

    assert set(got) == set(refs)
    assert {ref.key: value_of(got[ref]).value for ref in refs} == {
        ref.key: stored(target, f"value-{i:02d}") for i, ref in enumerate(refs)
    }
    assert calls.seen, "the backend reported none of its calls"
    assert all(outcome == "success" for _, outcome in calls.seen), calls.seen
    if target.name in BATCH_CALLS:
        operation, expected = BATCH_CALLS[target.name]
        assert calls.count(operation) == expected, calls.seen
        assert len(calls.seen) == expected, calls.seen


def test_versions_of_a_batch_of_25_keys_match_fetch_in_few_calls(target: ConformanceTarget) -> None:
    prefix = target.prefix()
    refs = [RemoteRef(f"{prefix}batch-{i:02d}") for i in range(BATCH)]
    for i, ref in enumerate(refs):
        target.put(ref.key, f"value-{i:02d}")
    fetched = {ref: value_of(v).version for ref, v in fetch(target, refs).items()}
    calls = Calls()

    got = with_client(target, lambda client: client.versions(refs + refs[:3]), calls)

    assert dict(got) == fetched
    assert all(outcome == "success" for _, outcome in calls.seen), calls.seen
    if target.name in VERSIONS_CALLS:
        operation, expected = VERSIONS_CALLS[target.name]
        assert calls.seen == [(operation, "success")] * expected, calls.seen


def test_versions_match_fetch_and_move_with_a_new_value(target: ConformanceTarget) -> None:
    prefix = target.prefix()
    refs = [RemoteRef(prefix + "changing"), RemoteRef(prefix + "steady")]
    for ref in refs:
        target.put(ref.key, "one")
    fetched = {ref: value_of(v).version for ref, v in fetch(target, refs).items()}

    before = with_client(target, lambda client: client.versions(refs))
    target.put(refs[0].key, "two")
    after = with_client(target, lambda client: client.versions(refs))

    assert dict(before) == fetched
    assert after[refs[0]] == value_of(fetch(target, [refs[0]])[refs[0]]).version
    assert after[refs[1]] == before[refs[1]]
    if keeps_versions(target):
        assert after[refs[0]] != before[refs[0]]


def test_validate_accepts_the_targets_identity(target: ConformanceTarget) -> None:
    calls = Calls()

    with_client(target, lambda client: client.validate(), calls)

    assert calls.seen
    assert all(outcome == "success" for _, outcome in calls.seen)
