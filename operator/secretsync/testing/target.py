"""What a provider's author hands the conformance kit: a ConformanceTarget.

No pytest here: a target is plain code that seeds the author's own service and builds
the backend the way a store would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from secretsync.providers.base import Backend, LoginMaterial


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallBudget:
    """The calls a batch costs where the provider's API batches: `n` distinct keys under
    one prefix() take exactly ceil(n / per_call) calls of `operation`, and no other call.

    `operation` is the name the client reports to its CallGate (`gate.enter(operation)`),
    e.g. "BatchGetSecretValue" with per_call=20 for Secrets Manager.
    """

    operation: str
    per_call: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What the backend can do; the kit reports a case for a capability it lacks as
    skipped, with the reason, never as passed."""

    # put(key, bytes) stores non-UTF-8 bytes, and fetch() returns them with is_binary=True.
    binary: bool = False
    # The service keeps versions: a ref pinned to an earlier version reads that version,
    # and versions() moves when a new value is written (the engine's cheap change check).
    versions: bool = False
    # versions() moves when a new value is written, though earlier versions cannot be
    # read (a document's digest); implied by `versions`.
    change_versions: bool = False
    # find() lists keys under a path and filters them by a name regexp.
    find: bool = False
    # find() matches tags, and the target is a TaggingTarget (put_tags). When False, a
    # query with tags must be refused with ProviderConfigError (ignoring the tags would
    # sync more than was asked for).
    find_tags: bool = False
    # fetch() of a batch takes this many calls (None: no promise; one call a key is fine).
    fetch_batch: CallBudget | None = None
    # versions() of a batch takes this many calls (None: no promise).
    versions_batch: CallBudget | None = None
    # validate() proves the identity with a call to the service. False when the keys
    # are the store's own and there is nothing to call (SOPS with age): validate() must
    # then still succeed, and make no failing call.
    validate_calls: bool = True


class ConformanceTarget(Protocol):
    """A backend wired to a running service, and a way to seed that service.

    The kit reads only through the backend (login, client, and the SecretsClient
    protocol), exactly as the engine does; it writes only through put() and put_map().
    """

    @property
    def name(self) -> str:
        """A short id for test reports, e.g. "aws-secretsmanager" or "httpjson"."""

    @property
    def capabilities(self) -> Capabilities:
        """What the backend supports (see Capabilities)."""

    def backend(self) -> Backend:
        """The backend, configured as a store would configure it."""

    def material(self) -> LoginMaterial:
        """Login material of an identity that may read every key under prefix()."""

    def prefix(self) -> str:
        """A fresh key prefix (unique on every call) under which put() may write."""

    def put(self, key: str, value: str | bytes) -> None:
        """Create the remote secret, or write a new value (a new version where versions are
        kept). bytes are a binary value; they are only passed when capabilities.binary."""

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        """Create or overwrite a remote secret holding this JSON object (a KV map for a
        map-shaped store such as Vault)."""

    def stored_bytes(self, value: str) -> bytes:
        """What fetch() returns after put(key, value): the same bytes for a value store;
        for a map-shaped store, the map it keeps (Vault KV: {"value": ...}, or the object
        itself when the value is a JSON object) as the JSON it returns."""

    def denied_key(self) -> str | None:
        """An existing key that the identity of material() may not read, or None when the
        service cannot refuse one in this setup (the denial case is then skipped)."""


@runtime_checkable
class TaggingTarget(Protocol):
    """A target whose service keeps tags on secrets (capabilities.find_tags)."""

    def put_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Set these tags on an existing remote secret."""
