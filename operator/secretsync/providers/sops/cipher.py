"""sops's value cipher (aes/cipher.go): ENC[AES256_GCM,data:..,iv:..,tag:..,type:..].

Each value is AES-256-GCM with a random 32-byte nonce and the value's key path as
additional data, so a value moved to another key no longer authenticates. The
primitive is `cryptography`'s AESGCM; this module only reads the envelope.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secretsync.providers.sops import gofmt
from secretsync.providers.sops.tree import Comment, Leaf

# aes/cipher.go's pattern, unanchored at the end as it is there.
_ENVELOPE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class Failure(enum.Enum):
    """Why a value did not decrypt; the caller words it for the document."""

    MALFORMED = "malformed"  # not the envelope, bad base64, unknown type
    AUTHENTICATION = "authentication"  # GCM refused: wrong key, changed, or moved
    BAD_PLAINTEXT = "bad plaintext"  # decrypted, but not a valid value of its type


class CipherError(Exception):
    """A value that did not decrypt. Never carries the value or the key."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


def is_envelope(text: str) -> bool:
    """Whether a string looks like an encrypted value (it may still be malformed)."""
    return text.startswith("ENC[")


def _b64(text: str, part: str) -> bytes:
    try:
        # Go's StdEncoding skips line breaks and wants the padding.
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise CipherError(Failure.MALFORMED, f"its {part} is not base64") from None


def _typed(plain: bytes, kind: str) -> Leaf | Comment:
    text = plain.decode("utf-8", "surrogateescape")
    if kind == "str":
        return text
    if kind == "bytes":
        return plain
    if kind == "comment":
        return Comment(text)
    if kind == "int" and _INT.fullmatch(text) and -(2**63) <= int(text) < 2**63:
        return int(text)
    if kind == "float" and _FLOAT.fullmatch(text):
        return float(text)
    if kind == "bool" and text in _BOOLS:
        return _BOOLS[text]
    if kind == "time":
        parsed = gofmt.parse_rfc3339(text)
        if parsed is not None:
            return parsed
    raise CipherError(Failure.BAD_PLAINTEXT, f"it does not hold a valid {kind}")


_KINDS = ("str", "int", "float", "bytes", "bool", "time", "comment")


def decrypt(envelope: str, key: bytes, additional_data: str) -> Leaf | Comment:
    """The typed plaintext of one ENC[...] value; "" for "" (sops leaves empty values)."""
    if envelope == "":
        return ""
    match = _ENVELOPE.match(envelope)
    if match is None:
        raise CipherError(Failure.MALFORMED, "it is not ENC[AES256_GCM,data:,iv:,tag:,type:]")
    data = _b64(match[1], "data")
    nonce = _b64(match[2], "iv")
    tag = _b64(match[3], "tag")
    kind = match[4]
    if kind not in _KINDS:
        raise CipherError(Failure.MALFORMED, "its type is unknown")
    if len(tag) != 16 or not 8 <= len(nonce) <= 128:
        raise CipherError(Failure.MALFORMED, "its iv or tag has the wrong length")
    try:
        plain = AESGCM(key).decrypt(
            nonce, data + tag, additional_data.encode("utf-8", "surrogateescape")
        )
    except InvalidTag:
        raise CipherError(Failure.AUTHENTICATION, "it does not authenticate") from None
    return _typed(plain, kind)
