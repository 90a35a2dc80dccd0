"""The SOPS document format, decryption side: what sops 3.13 writes, read as it reads it.

No maintained Python implementation of SOPS exists, so the format is implemented
here on maintained primitives: AES-256-GCM from `cryptography`, age from `pyrage`.
The reference is sops's Go source (v3.13.3); each module names the file it follows::

    parse(raw, fmt)          yamlload / jsonfmt / dotenv   the store's loader
                             metadata                      the `sops` entry: keys, rules
    unwrap_age(...)          age                           the data key (KMS and transit:
                                                           the backend asks the service)
    decrypt(doc, data_key)   walk, cipher                  every leaf, and the MAC
    Decrypted.plaintext()    yamlemit, yamlemitter,        what `sops decrypt` prints
                             yamlwriter / jsonfmt / dotenv

A document is refused (SopsDocumentError, one distinct message each) when it is not
valid YAML/JSON/dotenv, has no sops metadata, has malformed metadata, splits its data
key over several key groups (Shamir), has no MAC, has a malformed ENC[] value, holds a
plaintext value where the rules say it is encrypted, has a value that does not
authenticate at its key path (changed, or moved from another key), is opened with
another document's data key, has a MAC or lastmodified that was changed, or whose
MAC does not match its values (a value changed, a key added or removed).

Behaviour matched to sops, and verified against the real sops CLI in
tests/unit/test_sops_document.py: YAML (comments included), JSON, dotenv and binary
documents; str, int, float, bool, timestamp and comment leaves; the suffix, regex and
comment-regex rules and mac_only_encrypted; the MAC over values in document order.

Known limitations, where plaintext() can differ from `sops decrypt`:

- Comments in YAML are placed by their line and column, which reproduces yaml.v3 for
  documents sops wrote (its own layout) and for comments above keys, after values and
  at the end of blocks. A hand-placed comment inside a flow collection, or between
  documents of a multi-document file, may be printed elsewhere than sops prints it.
  Comments never count in the MAC: values and verification are not affected.
- Key regexes are Python's `re`, not Go's RE2; they agree on ordinary patterns.
- The "bytes" leaf type (written only by the old Python sops) decrypts and counts in
  the MAC as sops does; its printing follows yaml.v3/encoding/json but is untested
  against the CLI, which cannot write it.
- INI documents are not supported (format_for says INI, as sops does; parse refuses).

Messages never carry a value, a data key or ciphertext: they name the document
(`where`), key paths and metadata fields.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hmac
from typing import Any

from secretsync.providers.sops import (
    cipher,
    dotenv,
    gofmt,
    jsonfmt,
    metadata,
    walk,
    yamlemit,
    yamlload,
)
from secretsync.providers.sops.age import check_age_identities, unwrap_age
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.metadata import AgeStanza, KmsStanza, TransitStanza
from secretsync.providers.sops.tree import Branch, to_python

__all__ = [
    "AgeStanza",
    "Decrypted",
    "EncryptedDocument",
    "Format",
    "KmsStanza",
    "SopsDocumentError",
    "TransitStanza",
    "check_age_identities",
    "decrypt",
    "format_for",
    "parse",
    "unwrap_age",
]


class Format(enum.Enum):
    """A document's store, as sops names them."""

    YAML = "yaml"
    JSON = "json"
    DOTENV = "dotenv"
    INI = "ini"  # sops reads .ini files as INI; secretsync does not (parse refuses)
    BINARY = "binary"


def format_for(name: str) -> Format:
    """The format sops picks from a file name (cmd/sops/formats FormatForPath): by
    suffix, .yaml/.yml, .json, .env, .ini; anything else is binary."""
    if name.endswith((".yaml", ".yml")):
        return Format.YAML
    if name.endswith(".json"):
        return Format.JSON
    if name.endswith(".env"):
        return Format.DOTENV
    if name.endswith(".ini"):
        return Format.INI
    return Format.BINARY


@dataclasses.dataclass(frozen=True)
class EncryptedDocument:
    """A parsed document: its keys and rules read, nothing decrypted."""

    format: Format
    age: tuple[AgeStanza, ...]
    kms: tuple[KmsStanza, ...]
    transit: tuple[TransitStanza, ...]
    other_keys: tuple[str, ...]  # key kinds present that secretsync does not open
    metadata: metadata.Metadata = dataclasses.field(repr=False)
    branches: tuple[Branch, ...] = dataclasses.field(repr=False, compare=False)


def _too_deep(where: str) -> SopsDocumentError:
    return SopsDocumentError(f"{where}: the document nests too deeply; it is not synced")


def parse(raw: bytes, fmt: Format, *, where: str) -> EncryptedDocument:
    """Read an encrypted document; SopsDocumentError if it is not one sops would open."""
    try:
        return _parse(raw, fmt, where=where)
    except RecursionError:
        raise _too_deep(where) from None


def _parse(raw: bytes, fmt: Format, *, where: str) -> EncryptedDocument:
    if fmt is Format.YAML:
        branches = yamlload.load(raw, where=where)
    elif fmt is Format.JSON:
        branches = [jsonfmt.load(raw, where=where)]
    elif fmt is Format.BINARY:
        # sops keeps a binary file as a JSON document with one "data" value.
        branches = [jsonfmt.load(raw, where=where, what="JSON (a binary file encrypted by sops)")]
    elif fmt is Format.DOTENV:
        branches = [dotenv.load(raw, where=where)]
    else:
        raise SopsDocumentError(
            f"{where}: INI documents are not supported; encrypt it as YAML, JSON, dotenv "
            "or binary; it is not synced"
        )
    meta = metadata.extract(branches, flattened=fmt is Format.DOTENV, where=where)
    return EncryptedDocument(
        format=fmt,
        age=meta.age,
        kms=meta.kms,
        transit=meta.transit,
        other_keys=meta.other_keys,
        metadata=meta,
        branches=tuple(branches),
    )


@dataclasses.dataclass(frozen=True)
class Decrypted:
    """A verified, decrypted document.

    `tree` is the values as plain Python (dicts in key order, lists, str, int, float,
    bool, None; a timestamp as an aware datetime; a string that is not UTF-8 as
    bytes); a list of such dicts for a YAML file of several documents; None for a
    binary document.
    """

    format: Format
    tree: Any = dataclasses.field(repr=False)
    _plaintext: bytes = dataclasses.field(repr=False)

    def plaintext(self) -> bytes:
        """What `sops decrypt` prints for this document, byte for byte (a binary
        document's original bytes)."""
        return self._plaintext


def _check_mac(doc: EncryptedDocument, key: bytes, *, where: str) -> str:
    """The MAC stored in the document, decrypted."""
    meta = doc.metadata
    if meta.mac == "":
        raise SopsDocumentError(
            f"{where}: the document has no MAC, so it cannot be verified; it is not synced"
        )
    try:
        stored = cipher.decrypt(meta.mac, key, gofmt.rfc3339(meta.last_modified))
    except cipher.CipherError as error:
        if error.failure is not cipher.Failure.AUTHENTICATION:
            raise SopsDocumentError(
                f"{where}: the document's MAC is malformed: {error.detail}; it is not synced"
            ) from None
        raise _mac_refused(doc, key, where=where) from None
    return stored if isinstance(stored, str) else ""


def _mac_refused(doc: EncryptedDocument, key: bytes, *, where: str) -> SopsDocumentError:
    """Tell a data key of another document from a changed MAC or lastmodified: with the
    right key, the values still decrypt."""
    leaves = walk.encrypted_leaves(copy.deepcopy(list(doc.branches)), doc.metadata.rules)
    for envelope, additional in leaves:
        try:
            cipher.decrypt(envelope, key, additional)
        except cipher.CipherError:
            continue
        return SopsDocumentError(
            f"{where}: the MAC does not authenticate: the MAC or lastmodified was changed "
            "after encryption; it is not synced"
        )
    if leaves:
        return SopsDocumentError(
            f"{where}: the data key does not decrypt this document (it is another "
            "document's key); it is not synced"
        )
    return SopsDocumentError(
        f"{where}: the MAC does not authenticate with the data key: a wrong key, or the "
        "MAC or lastmodified was changed; it is not synced"
    )


def _plaintext(fmt: Format, branches: list[Branch], *, where: str) -> bytes:
    try:
        if fmt is Format.YAML:
            return yamlemit.emit(branches)
        if fmt is Format.JSON:
            return jsonfmt.emit(branches[0])
        if fmt is Format.DOTENV:
            return dotenv.emit(branches[0])
    except (ValueError, TypeError):
        raise SopsDocumentError(
            f"{where}: the decrypted document holds a value {fmt.value} cannot print "
            "(sops refuses it too); it is not synced"
        ) from None
    for key, value in branches[0].items:
        if key == "data":
            if isinstance(value, str):
                return value.encode("utf-8", "surrogateescape")
            break
    raise SopsDocumentError(
        f"{where}: not a binary SOPS document: it has no string data entry (is it YAML, "
        "JSON or dotenv, with another file name?); it is not synced"
    )


def decrypt(doc: EncryptedDocument, data_key: bytes, *, where: str) -> Decrypted:
    """Decrypt and verify: every encrypted value, then the MAC over all values."""
    try:
        return _decrypt(doc, data_key, where=where)
    except RecursionError:
        raise _too_deep(where) from None


def _decrypt(doc: EncryptedDocument, data_key: bytes, *, where: str) -> Decrypted:
    if len(data_key) not in (16, 24, 32):
        raise SopsDocumentError(
            f"{where}: the data key is {len(data_key)} bytes long, not an AES key; it is not synced"
        )
    stored = _check_mac(doc, data_key, where=where)
    branches = copy.deepcopy(list(doc.branches))
    computed = walk.decrypt_tree(branches, data_key, doc.metadata.rules, where=where)
    if not hmac.compare_digest(stored.encode("utf-8", "surrogateescape"), computed.encode()):
        raise SopsDocumentError(
            f"{where}: the MAC does not match: the document was changed after it was "
            "encrypted; it is not synced"
        )
    plaintext = _plaintext(doc.format, branches, where=where)
    if doc.format is Format.BINARY:
        tree = None
    elif len(branches) == 1:
        tree = to_python(branches[0])
    else:
        tree = [to_python(b) for b in branches]
    return Decrypted(format=doc.format, tree=tree, _plaintext=plaintext)
