"""The values that cross the provider seam, shared by the engine and the providers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


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


@dataclasses.dataclass(frozen=True, slots=True)
class FindQuery:
    """dataFrom.find: every remote secret matching all the criteria."""

    path: str | None = None
    name_regexp: str | None = None
    tags: tuple[tuple[str, str], ...] = ()


# A provider reports each API call it makes: (operation, outcome), e.g.
# ("BatchGetSecretValue", "success"); the engine turns them into metrics.
CallObserver = Callable[[str, str], None]
