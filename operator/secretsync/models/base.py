"""The base of every model: camelCase aliases as in the CRDs, frozen, unknown fields ignored
(the apiserver's schema already pruned and validated them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """A frozen model read from (and dumped to) the CRDs' camelCase JSON."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )
