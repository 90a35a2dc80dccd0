"""The values that cross the provider seam, shared by the engine and the providers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from secretsync.errors import ProviderError


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteRef:
    """One remote secret (a whole value) at one version.

    `version` is what the user asked for: a version id, a stage (AWSCURRENT) or
    label, a KV v2 version number; None means the current one. A `property`
    is applied by the engine to the fetched value, so refs to several
    properties of one secret are one fetch.
    """

    key: str
    version: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteValue:
    """A fetched value. `value` is the raw bytes (a KV map arrives as its JSON)."""

    value: bytes = dataclasses.field(repr=False)  # never in a repr, a log or a traceback
    version: str  # the provider's id of what was read, for status.syncedVersions
    is_binary: bool = False
    # The value already parsed, for documents that are not JSON (a SOPS YAML or dotenv
    # file): `property` and `dataFrom.extract` walk this tree instead of parsing `value`.
    document: object = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class FindQuery:
    """dataFrom.find: every remote secret matching all the criteria."""

    path: str | None = None
    name_regexp: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


# A provider reports each API call it makes: (operation, outcome), e.g.
# ("BatchGetSecretValue", "success"); the engine turns them into metrics.
CallObserver = Callable[[str, str], None]


class CallGate(Protocol):
    """What a SecretsClient does around every API call it makes.

    The engine's gate makes a call wait for the store's refreshBudget, refuses it
    while the identity's circuit is open (throttling, outage), and counts it. A
    provider calls `enter` right before each request and `leave` right after it,
    with the translated error if it failed.
    """

    async def enter(self, operation: str) -> None:
        """Wait for the call's turn; raise ProviderUnavailableError if calls must wait."""

    def leave(self, operation: str, error: ProviderError | None) -> None:
        """Report the call's outcome (None: it succeeded)."""


class ObservingGate:
    """A gate that only reports each call to an observer (tests, one-off clients)."""

    def __init__(self, observe: CallObserver) -> None:
        self._observe = observe

    async def enter(self, operation: str) -> None:
        """Never waits."""

    def leave(self, operation: str, error: ProviderError | None) -> None:
        """Report (operation, "success" | "error")."""
        self._observe(operation, "success" if error is None else "error")
