"""The bases of the models: camelCase aliases as in the CRDs, frozen, unknown fields
ignored (the apiserver's schema already pruned and validated them).

Two kinds, for two sizes of population. Stores are few: pydantic models (`Model`).
SecretSyncs and their statuses are many (tens of thousands in one process): slotted
frozen dataclasses that pydantic validates (`compact`, `Parser`), about a tenth of a
model's memory each, since a model instance carries its own `__dict__` and
fields-set (docs/design/0008-performance.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
T = TypeVar("T")
SHARED_MAX = 65536  # strings kept by `share` before it starts afresh
_shared: dict[str, str] = {}


def share(text: str) -> str:
    """One copy of a string that recurs across thousands of SecretSyncs (store names,
    remote keys, version ids, reasons, messages, timestamps), where each decoded JSON
    document had its own. A bounded table rather than `sys.intern`: timestamps and
    version ids keep changing, and interned strings are never freed on some Pythons
    (3.12 before python/cpython#113993)."""
    if len(_shared) >= SHARED_MAX:
        _shared.clear()
    return _shared.setdefault(text, text)


Interned = Annotated[str, AfterValidator(share)]


class Model(BaseModel):
    """A frozen model read from (and dumped to) the CRDs' camelCase JSON."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


def compact(cls: type[T]) -> type[T]:
    """Give a (frozen, slotted) dataclass the models' camelCase configuration."""
    cls.__pydantic_config__ = CONFIG  # type: ignore[attr-defined]
    return cls


class Parser(Generic[T]):
    """Validates the CRDs' JSON into a compact dataclass, and dumps it back."""

    def __init__(self, cls: type[T]) -> None:
        self._adapter = TypeAdapter(cls)

    def parse(self, raw: Any) -> T:
        """Raises pydantic.ValidationError, whose locations use the JSON field names."""
        return self._adapter.validate_python(raw)

    def dump(self, value: T) -> dict[str, Any]:
        """camelCase JSON, None fields left out."""
        out: dict[str, Any] = self._adapter.dump_python(
            value, by_alias=True, exclude_none=True, mode="json"
        )
        return out
