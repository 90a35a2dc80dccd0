"""From fetched remote values to Secret keys: properties, extract, find naming, checks.

Pure functions. Errors name the SecretSync field and the remote key, never a value.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from secretsync.errors import ConfigError
from secretsync.models.remote import RemoteValue

SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_BYTES = 1024 * 1024  # the apiserver's limit for a Secret


def _json(value: RemoteValue, *, where: str, key: str) -> Any:
    if value.document is not None:
        return value.document
    if value.is_binary:
        raise ConfigError(f"{where}: remote secret {key!r} is binary, not JSON")
    try:
        return json.loads(value.value)
    except ValueError:
        raise ConfigError(f"{where}: remote secret {key!r} is not JSON") from None


def _walk(doc: Any, prop: str, *, where: str, key: str) -> Any:
    # An exact top-level key wins, so JSON keys that contain dots stay reachable.
    if isinstance(doc, dict) and prop in doc:
        return doc[prop]
    node = doc
    for part in prop.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ConfigError(f"{where}: property {prop!r} does not exist in remote secret {key!r}")
    return node


def _to_bytes(node: Any, *, where: str, key: str) -> bytes:
    if isinstance(node, str):
        return node.encode()
    if isinstance(node, bytes):  # a decrypted SOPS value that is not UTF-8
        return node
    if isinstance(node, datetime.date):  # a YAML timestamp of a SOPS document
        return _timestamp(node).encode()
    try:
        return json.dumps(node, separators=(",", ":"), default=_jsonable).encode()
    except TypeError:
        # JSON has no bytes: rather than alter them, refuse, and say how to get them.
        raise ConfigError(
            f"{where}: remote secret {key!r} holds bytes that are not UTF-8 text inside a "
            "map or list; select that value alone with property"
        ) from None


def _timestamp(node: datetime.date) -> str:
    """RFC 3339, as sops (Go) prints a YAML timestamp: Z for UTC."""
    text = node.isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def _jsonable(node: Any) -> Any:
    if isinstance(node, datetime.date):
        return _timestamp(node)
    raise TypeError(type(node).__name__)


def select(value: RemoteValue, prop: str | None, *, where: str, key: str) -> bytes:
    """The bytes for one Secret key: the whole value, or a property of its JSON."""
    if prop is None:
        return value.value
    node = _walk(_json(value, where=where, key=key), prop, where=where, key=key)
    return _to_bytes(node, where=where, key=key)


def extract(value: RemoteValue, prop: str | None, *, where: str, key: str) -> dict[str, bytes]:
    """Every top-level key of the JSON object (or of the object at prop)."""
    doc = _json(value, where=where, key=key)
    if prop is not None:
        doc = _walk(doc, prop, where=where, key=key)
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: remote secret {key!r} is not a JSON object")
    out: dict[str, bytes] = {}
    for position, (name, node) in enumerate(doc.items(), start=1):
        if not SECRET_KEY.match(name):
            # Named by position: a key of the remote document may itself be sensitive
            # (a URL with credentials), and statuses are readable by many.
            raise ConfigError(
                f"{where}: JSON key number {position} ({len(name)} characters) of remote secret "
                f"{key!r} is not a valid Secret key (alphanumerics, '-', '_', '.')"
            )
        out[name] = _to_bytes(node, where=where, key=key)
    return out


def key_for_found(remote_key: str) -> str:
    """The Secret key for a remote secret found by dataFrom.find: its name, made valid."""
    name = re.sub(r"[^-._a-zA-Z0-9]", "_", remote_key.strip("/"))
    return name or "_"


def merge(parts: Sequence[tuple[str, Mapping[str, bytes]]]) -> dict[str, bytes]:
    """Join data and dataFrom results; two sources of one key is an error naming both."""
    out: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    for where, data in parts:
        for key, val in data.items():
            if key in out:
                raise ConfigError(
                    f"Secret key {key!r} comes from both {origin[key]} and {where}; "
                    "each key may come from one source only"
                )
            out[key] = val
            origin[key] = where
    return out


def check_size(data: Mapping[str, bytes]) -> None:
    """Refuse data the apiserver would refuse, with a message that says so."""
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_SECRET_BYTES:
        raise ConfigError(
            f"the Secret's data would be {size} bytes, over the 1 MiB Secret limit; "
            "split it across several SecretSyncs"
        )
