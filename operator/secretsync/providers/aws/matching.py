"""What find() checks on names itself, after the service narrowed the listing."""

from __future__ import annotations

import re

from secretsync.errors import ProviderConfigError


def name_pattern(regexp: str | None) -> re.Pattern[str] | None:
    """The compiled dataFrom.find.name.regexp (applied with re.search), if any."""
    if regexp is None:
        return None
    try:
        return re.compile(regexp)
    except re.error as exc:
        raise ProviderConfigError(
            f"dataFrom.find.name.regexp: {regexp!r} is not a valid regular expression ({exc})"
        ) from None


def contradictory(tags: tuple[tuple[str, str], ...]) -> bool:
    """Whether the tags ask one key for two values, which no secret can satisfy."""
    return len(dict(tags)) != len(set(tags))
