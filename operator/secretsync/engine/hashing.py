"""A keyed hash of a Secret's data: stable across restarts (the key lives in a Secret),
useless for guessing values (HMAC, not a plain digest of a possibly short password)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

PREFIX = "hmac-sha256:"


def data_hash(key: bytes, data: Mapping[str, bytes]) -> str:
    """HMAC-SHA256 over the sorted keys and values, length-prefixed so no two maps collide."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name in sorted(data):
        value = data[name]
        for part in (name.encode(), value):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
    return PREFIX + mac.hexdigest()
