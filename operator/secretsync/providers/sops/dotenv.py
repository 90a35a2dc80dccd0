"""dotenv documents as sops's dotenv store reads and writes them (stores/dotenv).

One KEY=VALUE per line, split at the first '='; a line starting with '#' is a
comment; blank lines are dropped; "\\n" in a value is a newline. Bytes that are not
UTF-8 pass through. The metadata is flattened into sops_* keys (metadata.py).
"""

from __future__ import annotations

from typing import Any

from secretsync.providers.sops import gofmt
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.tree import Branch, Comment


def load(raw: bytes, *, where: str) -> Branch:
    """The document as one Branch."""
    branch = Branch()
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line:
            continue
        if line.startswith(b"#"):
            branch.items.append((Comment(line[1:].decode("utf-8", "surrogateescape")), None))
            continue
        position = line.find(b"=")
        if position < 0:
            raise SopsDocumentError(
                f"{where}: not a valid dotenv file: line {number} has no '='; it is not synced"
            )
        key = line[:position].decode("utf-8", "surrogateescape")
        value = line[position + 1 :].replace(b"\\n", b"\n").decode("utf-8", "surrogateescape")
        branch.items.append((key, value))
    return branch


def value_text(value: Any) -> str:
    """stores.ValToString: a value that is not a string, as a dotenv line holds it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return gofmt.format_val(value)
    if isinstance(value, gofmt.GoTime):
        return gofmt.rfc3339(value)
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if value is None:
        return "<nil>"
    return str(value)


def emit(branch: Branch) -> bytes:
    """What `sops decrypt` prints for a dotenv document."""
    lines = []
    for key, value in branch.items:
        if isinstance(key, Comment):
            lines.append(f"#{key.value}\n")
        elif isinstance(value, Branch | list):
            raise ValueError("a dotenv value cannot be a mapping or a list")
        elif isinstance(value, str):
            lines.append(f"{key}={value.replace(chr(10), chr(92) + 'n')}\n")
        else:
            lines.append(f"{key}={value_text(value)}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")
