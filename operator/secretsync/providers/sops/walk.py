"""Decrypting a tree as sops.go's Tree.Decrypt does, and computing its MAC on the way.

Which leaves are encrypted is decided per leaf from the key path and the comments
above it (shouldBeEncrypted); the MAC is SHA-512 over the plaintext of every leaf
(or of the encrypted ones only, with mac_only_encrypted), in document order,
comments excluded. Both must match sops exactly or a good document is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from secretsync.providers.sops import cipher
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.gofmt import GoTime, format_f
from secretsync.providers.sops.tree import Branch, Comment, Uint64

# sops.go MACOnlyEncryptedInitialization: sha256("sops"), hashed first so such a MAC
# never equals one over all values.
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()


@dataclasses.dataclass(frozen=True)
class Rules:
    """The metadata that decides which leaves are encrypted (at most one rule is set;
    with none, sops uses unencrypted_suffix "_unencrypted")."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""
    mac_only_encrypted: bool = False


def _matches(pattern: str, text: str) -> bool:
    # Go's regexp.Match(pattern, ...) with its error ignored: a pattern that does not
    # compile matches nothing. RE2 and Python agree on the patterns people write.
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def should_be_encrypted(
    rules: Rules, path: Sequence[str], comments: Sequence[Sequence[str]], is_comment: bool
) -> bool:
    """sops.go Tree.shouldBeEncrypted, rule for rule."""
    encrypted = True
    if rules.unencrypted_suffix and any(p.endswith(rules.unencrypted_suffix) for p in path):
        encrypted = False
    if rules.encrypted_suffix:
        encrypted = any(p.endswith(rules.encrypted_suffix) for p in path)
    if rules.unencrypted_regex and any(_matches(rules.unencrypted_regex, p) for p in path):
        encrypted = False
    if rules.encrypted_regex:
        encrypted = any(_matches(rules.encrypted_regex, p) for p in path)
    if rules.unencrypted_comment_regex and any(
        _matches(rules.unencrypted_comment_regex, c) for level in comments for c in level
    ):
        encrypted = False
    if rules.encrypted_comment_regex:
        encrypted = False
        last = len(comments) - 1
        for i, level in enumerate(comments):
            for j, c in enumerate(level):
                # The comment line that matches is itself left in the clear.
                if is_comment and i == last and j == len(comments[last]) - 1:
                    continue
                if _matches(rules.encrypted_comment_regex, c):
                    return True
    return encrypted


def to_bytes(value: Any) -> bytes:
    """sops.go ToBytes: a leaf as the MAC hashes it."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return format_f(value).encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, GoTime):
        return value.text.encode()
    raise TypeError(type(value).__name__)


def shown(path: Sequence[str | int]) -> str:
    """A key path for messages: metadata.labels.app, items[2].name."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


Leaf = Callable[[Any, list[str], list[str | int], list[list[str]]], Any]


def _walk(
    value: Any, path: list[str], at: list[str | int], stack: list[list[str]], leaf: Leaf
) -> Any:
    if isinstance(value, Branch):
        stack = [*stack, []]
        for i, (key, item) in enumerate(value.items):
            if isinstance(key, Comment):
                stack[-1].append(key.value)
                out = leaf(key, path, at, stack)
                value.items[i] = (
                    out if isinstance(out, Comment) else Comment(out, key.inline),
                    None,
                )
                continue
            if isinstance(item, Comment):
                stack[-1].append(item.value)
            value.items[i] = (key, _walk(item, [*path, key], [*at, key], stack, leaf))
            if not isinstance(item, Comment):
                stack[-1] = []
        return value
    if isinstance(value, list):
        stack = [*stack, []]
        for i, item in enumerate(value):
            if isinstance(item, Comment):
                stack[-1].append(item.value)
            value[i] = _walk(item, path, [*at, i], stack, leaf)
            if not isinstance(item, Comment):
                stack[-1] = []
        return value
    if value is None:
        return None  # sops neither encrypts nor hashes a null
    return leaf(value, path, at, stack)


def decrypt_tree(branches: list[Branch], key: bytes, rules: Rules, *, where: str) -> str:
    """Decrypt every branch in place; the MAC sops computes over them (hex, upper case)."""
    digest = hashlib.sha512()
    if rules.mac_only_encrypted:
        digest.update(_MAC_ONLY_ENCRYPTED_INIT)

    def leaf(value: Any, path: list[str], at: list[str | int], stack: list[list[str]]) -> Any:
        if isinstance(value, Uint64):
            raise SopsDocumentError(
                f"{where}: the value at {shown(at)} is an integer larger than sops supports; "
                "it is not synced"
            )
        is_comment = isinstance(value, Comment)
        encrypted = should_be_encrypted(rules, path, stack, is_comment)
        out = value
        if encrypted:
            additional = ":".join(path) + ":"
            if isinstance(value, Comment):
                # sops keeps a comment that does not decrypt: it was never encrypted.
                with contextlib.suppress(cipher.CipherError):
                    out = cipher.decrypt(value.value, key, additional)
            elif isinstance(value, str) and (value == "" or cipher.is_envelope(value)):
                try:
                    out = cipher.decrypt(value, key, additional)
                except cipher.CipherError as error:
                    raise value_error(error, at, where=where) from None
            else:
                raise SopsDocumentError(
                    f"{where}: the value at {shown(at)} should be encrypted but is plaintext "
                    "(a partially encrypted document, or a key added after encryption); "
                    "it is not synced"
                )
        if (not rules.mac_only_encrypted or encrypted) and not isinstance(out, Comment):
            try:
                digest.update(to_bytes(out))
            except TypeError:
                raise SopsDocumentError(
                    f"{where}: the value at {shown(at)} has a type sops does not support; "
                    "it is not synced"
                ) from None
        return out

    for branch in branches:
        _walk(branch, [], [], [], leaf)
    return digest.hexdigest().upper()


def value_error(error: cipher.CipherError, at: list[str | int], *, where: str) -> SopsDocumentError:
    """The document's error for one value that did not decrypt."""
    if error.failure is cipher.Failure.AUTHENTICATION:
        return SopsDocumentError(
            f"{where}: the encrypted value at {shown(at)} does not authenticate with the "
            "document's data key at its key path: it was changed, or moved from another key, "
            "after encryption; it is not synced"
        )
    if error.failure is cipher.Failure.BAD_PLAINTEXT:
        return SopsDocumentError(
            f"{where}: the encrypted value at {shown(at)} decrypts, but {error.detail}; "
            "it is not synced"
        )
    return SopsDocumentError(
        f"{where}: the encrypted value at {shown(at)} is malformed: {error.detail}; "
        "it is not synced"
    )


def encrypted_leaves(branches: list[Branch], rules: Rules) -> list[tuple[str, str]]:
    """(envelope, additional data) of each non-empty value sops would decrypt, without
    changing the tree: to tell a wrong data key from a changed MAC."""
    found: list[tuple[str, str]] = []

    def leaf(value: Any, path: list[str], at: list[str | int], stack: list[list[str]]) -> Any:
        if (
            isinstance(value, str)
            and cipher.is_envelope(value)
            and should_be_encrypted(rules, path, stack, False)
        ):
            found.append((value, ":".join(path) + ":"))
        return value

    for branch in branches:
        _walk(branch, [], [], [], leaf)
    return found
