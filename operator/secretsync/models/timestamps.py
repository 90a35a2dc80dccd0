"""RFC 3339 times as the Kubernetes API and Vault write them, to epoch seconds."""

from __future__ import annotations

import datetime


def epoch(text: str) -> float | None:
    """Seconds since the epoch, or None if the text is not an RFC 3339 time. Takes a `Z`
    and nanoseconds (Vault writes both; Python before 3.11's parser took neither)."""
    head, dot, rest = text.partition(".")
    if dot:
        zone = rest.lstrip("0123456789")
        text = f"{head}.{rest[: len(rest) - len(zone)][:6]}{zone}"
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # no zone: which instant is meant is unknown
    return when.timestamp()
