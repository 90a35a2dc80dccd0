"""An in-memory provider with a conformance target, and defects to switch on: what
tests/unit/test_conformance_kit.py runs the kit (secretsync.testing) against, to show that
the kit passes a provider that keeps the contract and fails one that breaks it."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    SecretNotFoundError,
)
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.providers.base import LoginMaterial, SecretsClient, Session
from secretsync.testing import CallBudget, Capabilities

BATCH = 10
TOKEN = "fake-reader-token-0123456789"  # a dummy credential of the fake service
DEFECTS = frozenset(
    {
        "wrong-value-once",  # one fetched value is not what was written
        "log-value",  # values are logged at DEBUG
        "value-in-error",  # a not-found error quotes the other values of its batch
        "ignore-tags",  # find drops the tags of a query
        "ignore-pins",  # fetch reads the current value whatever version was pinned
        "unbatched",  # one call per key
    }
)
logger = logging.getLogger("fakeprovider")


@dataclasses.dataclass
class FakeService:
    """Secrets with every version, tags, and keys the reader may not read."""

    versions: dict[str, list[tuple[bytes, bool]]] = dataclasses.field(default_factory=dict)
    tags: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    denied: set[str] = dataclasses.field(default_factory=set)


class FakeClient:
    def __init__(
        self, service: FakeService, gate: CallGate, defects: frozenset[str], capable: bool
    ) -> None:
        self._service = service
        self._gate = gate
        self._defects = defects
        self._capable = capable  # False: no versions, no tags
        self._wrong_done = False

    async def _call(self, operation: str) -> None:
        await self._gate.enter(operation)
        self._gate.leave(operation, None)

    def _read(self, ref: RemoteRef) -> RemoteValue | ProviderError:
        if ref.key in self._service.denied:
            return AccessDeniedError(f"fake: {ref.key!r} is not for this identity")
        stored = self._service.versions.get(ref.key)
        if not stored:
            return SecretNotFoundError(f"fake: {ref.key!r} does not exist")
        pinned = ref.version if "ignore-pins" not in self._defects else None
        if pinned is not None and not self._capable:
            return ProviderConfigError(f"fake: {ref.key!r}: this service keeps no versions")
        if pinned is not None and not (pinned.isdigit() and 1 <= int(pinned) <= len(stored)):
            return SecretNotFoundError(f"fake: {ref.key!r} has no version {pinned!r}")
        number = int(pinned) if pinned is not None else len(stored)
        data, binary = stored[number - 1]
        if "wrong-value-once" in self._defects and not self._wrong_done:
            self._wrong_done = True
            data += b"!"
        version = str(number) if self._capable else "unversioned"
        return RemoteValue(value=data, version=version, is_binary=binary)

    async def _batched(self, operation: str, refs: Sequence[RemoteRef]) -> list[RemoteRef]:
        unique = list(dict.fromkeys(refs))
        size = 1 if "unbatched" in self._defects else BATCH
        for _ in range(0, len(unique), size):
            await self._call(operation)
        return unique

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        got = {ref: self._read(ref) for ref in await self._batched("read", refs)}
        values = [v.value for v in got.values() if isinstance(v, RemoteValue)]
        if "log-value" in self._defects:
            for value in values:
                logger.debug("read %r", value)
        if "value-in-error" in self._defects:
            quoted = b" ".join(values).decode(errors="replace")
            got = {
                r: SecretNotFoundError(f"{v}; batch answer: {quoted}")
                if isinstance(v, SecretNotFoundError)
                else v
                for r, v in got.items()
            }
        return got

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        read = {ref: self._read(ref) for ref in await self._batched("versions", refs)}
        return {ref: v.version for ref, v in read.items() if isinstance(v, RemoteValue)}

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        await self._call("list")
        if query.tags and not self._capable:
            raise ProviderConfigError("fake: this service keeps no tags")
        tags = () if "ignore-tags" in self._defects else query.tags
        pattern = re.compile(query.name_regexp) if query.name_regexp else None
        return [
            RemoteRef(key)
            for key in sorted(self._service.versions)
            if key.startswith(query.path or "")
            and key not in self._service.denied
            and (pattern is None or pattern.search(key))
            and all(self._service.tags.get(key, {}).get(k) == v for k, v in tags)
        ]

    async def validate(self) -> None:
        await self._call("whoami")

    async def close(self) -> None:
        """Nothing to release."""


class FakeBackend:
    name = "fake"
    endpoint = "fake:memory"

    def __init__(self, service: FakeService, defects: frozenset[str], capable: bool) -> None:
        self._service = service
        self._defects = defects
        self._capable = capable

    async def login(self, material: LoginMaterial) -> Session:
        if material.service_account_token != TOKEN:
            raise ProviderAuthError("fake: the token was refused")
        return Session(identity="fake:reader", expires_at=None, credentials=object())

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        return FakeClient(self._service, gate, self._defects, self._capable)


class FakeTarget:
    """A ConformanceTarget over a FakeService."""

    def __init__(
        self, *, defects: frozenset[str] = frozenset(), capable: bool = True, name: str = "fake"
    ) -> None:
        unknown = defects - DEFECTS
        if unknown:
            raise ValueError(f"unknown defects: {sorted(unknown)}")
        self.name = name
        self._service = FakeService()
        self._defects = defects
        self._capable = capable
        self.capabilities = (
            Capabilities(
                binary=True,
                versions=True,
                find=True,
                find_tags=True,
                fetch_batch=CallBudget(operation="read", per_call=BATCH),
                versions_batch=CallBudget(operation="versions", per_call=BATCH),
            )
            if capable
            else Capabilities()
        )

    def backend(self) -> FakeBackend:
        return FakeBackend(self._service, self._defects, self._capable)

    def material(self) -> LoginMaterial:
        return LoginMaterial(service_account_token=TOKEN)

    def prefix(self) -> str:
        return f"fake/{uuid.uuid4().hex[:8]}/"

    def put(self, key: str, value: str | bytes) -> None:
        data = value if isinstance(value, bytes) else value.encode()
        self._service.versions.setdefault(key, []).append((data, isinstance(value, bytes)))

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.put(key, json.dumps(dict(value)))

    def put_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self._service.tags[key] = dict(tags)

    def stored_bytes(self, value: str) -> bytes:
        return value.encode()

    def denied_key(self) -> str | None:
        if not self._capable:  # the target that can do nothing cannot deny either
            return None
        key = f"denied/{uuid.uuid4().hex[:8]}"
        self.put(key, f"not-for-the-reader-{uuid.uuid4().hex}")
        self._service.denied.add(key)
        return key
