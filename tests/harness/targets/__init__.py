"""Provider conformance targets: one per backend, each able to seed the real
service (moto, OpenBao) and hand the suite a backend plus login material.

Every backend must pass tests/integration/test_provider_conformance.py: value,
JSON property (applied by the engine, so: a JSON value round-trips), version,
whole map, find, not found, denied, batch.
"""

from __future__ import annotations

from typing import Protocol

from secretsync.providers.base import Backend, LoginMaterial


class ConformanceTarget(Protocol):
    """A provider backend wired to a real service for the conformance suite."""

    name: str  # test id, e.g. "aws-secretsmanager", "aws-parameterstore", "vault-kv2"

    def backend(self) -> Backend:
        """A backend configured for the service, as a store would configure it."""

    def material(self) -> LoginMaterial:
        """Login material for an identity allowed to read keys under prefix()."""

    def prefix(self) -> str:
        """A fresh key prefix (unique per call) under which put() may write."""

    def put(self, key: str, value: str | bytes) -> None:
        """Create or overwrite a remote secret (bytes: a binary value where supported)."""

    def put_map(self, key: str, value: dict[str, str]) -> None:
        """Create a remote secret holding a JSON object (a KV map for Vault)."""

    def denied_key(self) -> str | None:
        """An existing key the identity may not read, or None if the service cannot deny."""

    def supports_binary(self) -> bool:
        """Whether put() can store non-UTF-8 bytes."""

    def stored_bytes(self, value: str) -> bytes:
        """What fetch() returns after put(key, value): the same bytes for a value store,
        the map as compact JSON for a map store (Vault KV: {"value": ...})."""

    def supports_versions(self) -> bool:
        """Whether the service keeps old versions (Vault KV v1 does not)."""
