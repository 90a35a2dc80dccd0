"""Go-style durations (30s, 1h30m, 0), as the CRDs accept them."""

from __future__ import annotations

import re

from secretsync.errors import ConfigError

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(text: str, *, field: str) -> float:
    """Seconds in a duration; "0" is zero. The field names where it came from in errors."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(f"{field}: {text!r} is not a duration such as 30s, 15m or 1h")
    return total
