"""JSON documents as sops's JSON store reads and writes them (stores/json).

Reading follows Go's token decoder with UseNumber: an integer within int64 is an
int, any other number a float; duplicate keys are kept in order; text after the
top-level object is ignored. Writing follows encoding/json (HTML characters and
U+2028/9 escaped, Go's float spelling) re-indented with a tab by json.Indent.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from secretsync.providers.sops import gofmt
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.tree import Branch, Comment

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotJsonError(Exception):
    pass


def _number(text: str) -> int | float:
    if re.fullmatch(r"-?[0-9]+", text):
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    result = float(text)
    if result in (float("inf"), float("-inf")):
        raise _NotJsonError("a number is out of range")
    return result


def _constant(name: str) -> Any:
    raise _NotJsonError("NaN and Infinity are not JSON")


def _clean(value: Any) -> Any:
    # Go's decoder turns an unpaired \ud800 escape into U+FFFD; Python keeps it.
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, Branch):
        value.items = [(_clean(k), _clean(v)) for k, v in value.items]
    elif isinstance(value, list):
        value[:] = [_clean(v) for v in value]
    return value


def load(raw: bytes, *, where: str, what: str = "JSON") -> Branch:
    """The top-level object as a Branch."""
    text = raw.decode("utf-8", "replace")  # Go's decoder replaces invalid UTF-8 too
    decoder = json.JSONDecoder(
        object_pairs_hook=lambda pairs: Branch(list(pairs)),
        parse_int=_number,
        parse_float=_number,
        parse_constant=_constant,
    )
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        value, _ = decoder.raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise SopsDocumentError(
            f"{where}: not valid {what}: {error.msg} at line {error.lineno}, column "
            f"{error.colno}; it is not synced"
        ) from None
    except _NotJsonError as error:
        raise SopsDocumentError(f"{where}: not valid {what}: {error}; it is not synced") from None
    if not isinstance(value, Branch):
        raise SopsDocumentError(
            f"{where}: not a document sops reads: the {what} is not an object; it is not synced"
        )
    cleaned = _clean(value)
    assert isinstance(cleaned, Branch)
    return cleaned


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def quote(text: str) -> str:
    """encoding/json's string: HTML-safe escapes, invalid UTF-8 as \\ufffd."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or ch in "<>&":
            out.append(f"\\u{code:04x}")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append("\\ufffd")  # a byte that is not UTF-8 (held as a surrogate escape)
        elif code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _encode(value: Any, depth: int, indent: str) -> str:
    inner = indent * (depth + 1)
    if isinstance(value, Branch):
        items = [(k, v) for k, v in value.items if not isinstance(k, Comment)]
        if not items:
            return "{}"
        body = ",\n".join(f"{inner}{quote(k)}: {_encode(v, depth + 1, indent)}" for k, v in items)
        return "{\n" + body + "\n" + indent * depth + "}"
    if isinstance(value, list):
        elements = [v for v in value if not isinstance(v, Comment)]
        if not elements:
            return "[]"
        body = ",\n".join(inner + _encode(v, depth + 1, indent) for v in elements)
        return "[\n" + body + "\n" + indent * depth + "]"
    if value is None:
        return "null"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("json: unsupported value")
        return gofmt.format_json(value)
    if isinstance(value, gofmt.GoTime):
        return quote(value.text)
    if isinstance(value, bytes):
        return quote(base64.b64encode(value).decode())
    raise ValueError(f"json: unsupported type {type(value).__name__}")


def emit(branch: Branch, *, indent: str = "\t") -> bytes:
    """What `sops decrypt` prints for a JSON document."""
    return (_encode(branch, 0, indent) + "\n").encode("utf-8")
