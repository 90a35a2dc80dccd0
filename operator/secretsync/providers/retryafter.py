"""The HTTP Retry-After header, which AWS and Vault may send with a throttling answer."""

from __future__ import annotations

import email.utils
import math
import time

RETRY_AFTER_CAP = 3600.0  # a broken header must not silence an identity for longer


def retry_after_seconds(value: object) -> float | None:
    """A Retry-After header as seconds from now: delta-seconds or an HTTP date (RFC 9110);
    None when absent or unreadable; capped at RETRY_AFTER_CAP."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)
