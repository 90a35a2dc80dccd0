"""sops's document tree: ordered mappings, lists, typed leaves and comments.

Every store (YAML, JSON, dotenv, binary) loads into this shape and prints from it,
as sops's own stores do (sops.go: TreeBranch, TreeItem, Comment). A mapping keeps
its order and its comments as items; a comment inside a list is an element.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

from secretsync.providers.sops.gofmt import GoTime


@dataclasses.dataclass
class Comment:
    """A comment line; `value` is its text after the '#'."""

    value: str
    # A comment that followed a value on its line; sops keeps the flag only for
    # comments it leaves unencrypted (a decrypted comment is always printed above).
    inline: bool = False


# A string that is not valid UTF-8 is held with surrogate escapes (PEP 383), so its
# bytes survive; `bytes` is sops's separate "bytes" type (files of the Python sops).
Leaf: TypeAlias = str | int | float | bool | bytes | GoTime | None


class Uint64(int):
    """An integer above int64 in a YAML document: yaml.v3 decodes it as uint64, a type
    sops refuses to walk."""


@dataclasses.dataclass
class Branch:
    """An ordered mapping: (key, value) items, where a key may be a Comment (value None)."""

    items: list[tuple[str | Comment, Any]] = dataclasses.field(default_factory=list)


def to_python(value: Any) -> Any:
    """A decrypted value as plain Python: dicts in key order, lists, leaves; comments
    dropped; a timestamp as an aware datetime; a string that is not UTF-8 as bytes."""
    if isinstance(value, Branch):
        out: dict[str, Any] = {}
        for key, item in value.items:
            if not isinstance(key, Comment):
                out[key] = to_python(item)
        return out
    if isinstance(value, list):
        return [to_python(v) for v in value if not isinstance(v, Comment)]
    if isinstance(value, GoTime):
        return value.to_datetime()
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value
