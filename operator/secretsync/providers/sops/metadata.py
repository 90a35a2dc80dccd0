"""The `sops` metadata of a document (stores/stores.go, stores/metadata.go, stores/flatten.go).

It says how the data key is wrapped (age, AWS KMS, Vault transit, and kinds we do
not open), which leaves are encrypted, when the document was last written and its
encrypted MAC. It is read as sops reads it: mapstructure's weak typing, dotenv's
flattened `sops_*` keys, one key group or the legacy top-level key lists.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from secretsync.providers.sops import gofmt
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.tree import Branch, Comment
from secretsync.providers.sops.walk import Rules

SOPS_KEY = "sops"
SOPS_PREFIX = "sops_"  # dotenv: every metadata entry is a top-level sops_... key


@dataclasses.dataclass(frozen=True)
class AgeStanza:
    """The data key encrypted to one age recipient."""

    recipient: str
    enc: str = dataclasses.field(repr=False)  # an armored age file holding the data key


@dataclasses.dataclass(frozen=True)
class KmsStanza:
    """The data key encrypted by one AWS KMS key."""

    arn: str
    enc: bytes = dataclasses.field(repr=False)  # the KMS ciphertext blob (base64-decoded)
    context: Mapping[str, str]  # the encryption context it was encrypted with
    # The role sops assumed to call KMS, if the document names one. Parsed, never used:
    # the store's identity decrypts (sops/keys.py), so a document picks no role.
    role: str | None


@dataclasses.dataclass(frozen=True)
class TransitStanza:
    """The data key encrypted by one Vault transit key."""

    vault_address: str
    engine_path: str
    key_name: str
    enc: str = dataclasses.field(repr=False)  # "vault:v1:..."


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What the document's `sops` entry says."""

    last_modified: gofmt.GoTime
    mac: str = dataclasses.field(repr=False)
    rules: Rules
    age: tuple[AgeStanza, ...]
    kms: tuple[KmsStanza, ...]
    transit: tuple[TransitStanza, ...]
    other_keys: tuple[str, ...]  # kinds present that we do not open: pgp, gcp_kms, ...


_OTHER_KINDS = ("pgp", "gcp_kms", "azure_kv", "hckms")
_KINDS = ("kms", "hc_vault", "age", *_OTHER_KINDS)
_RULES = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


class _MalformedError(Exception):
    """A metadata field that sops would refuse; worded by `read`."""


def _plain(value: Any) -> Any:
    # stores/metadata.go sopsToGo: comments are not metadata.
    if isinstance(value, Branch):
        return {k: _plain(v) for k, v in value.items if not isinstance(k, Comment)}
    if isinstance(value, list):
        return [_plain(v) for v in value if not isinstance(v, Comment)]
    return value


# mapstructure with WeaklyTypedInput: the conversions sops's metadata decoding allows.
def _str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return gofmt.format_f(value)
    raise _MalformedError(f"{field} is not a string")


def _bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        if value == "":
            return False
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if value in ("0", "f", "F", "FALSE", "false", "False"):
            return False
    raise _MalformedError(f"{field} is not a boolean")


def _int(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        if value == "":
            return 0
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise _MalformedError(f"{field} is not a number")


def _list(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _MalformedError(f"{field} is not a list of mappings")
    return value


def _created(entry: Mapping[str, Any], field: str) -> None:
    # sops parses created_at of these kinds and refuses the document if it cannot.
    if gofmt.parse_rfc3339(_str(entry.get("created_at"), field)) is None:
        raise _MalformedError(f"{field}.created_at is not an RFC 3339 time")


def _group(
    raw: Mapping[str, Any], field: str
) -> tuple[
    tuple[AgeStanza, ...], tuple[KmsStanza, ...], tuple[TransitStanza, ...], tuple[str, ...]
]:
    age = tuple(
        AgeStanza(
            recipient=_str(e.get("recipient"), f"{field}age[{i}].recipient"),
            enc=_str(e.get("enc"), f"{field}age[{i}].enc"),
        )
        for i, e in enumerate(_list(raw.get("age"), f"{field}age"))
    )
    kms = []
    for i, e in enumerate(_list(raw.get("kms"), f"{field}kms")):
        name = f"{field}kms[{i}]"
        _created(e, name)
        try:
            blob = base64.b64decode(_str(e.get("enc"), f"{name}.enc"), validate=True)
        except (binascii.Error, ValueError):
            raise _MalformedError(f"{name}.enc is not base64") from None
        context = e.get("context") or {}
        if not isinstance(context, dict):
            raise _MalformedError(f"{name}.context is not a mapping")
        kms.append(
            KmsStanza(
                arn=_str(e.get("arn"), f"{name}.arn"),
                enc=blob,
                context={
                    str(k): _str(v, f"{name}.context") for k, v in context.items() if v is not None
                },
                role=_str(e.get("role"), f"{name}.role") or None,
            )
        )
    transit = []
    for i, e in enumerate(_list(raw.get("hc_vault"), f"{field}hc_vault")):
        name = f"{field}hc_vault[{i}]"
        _created(e, name)
        transit.append(
            TransitStanza(
                vault_address=_str(e.get("vault_address"), f"{name}.vault_address"),
                engine_path=_str(e.get("engine_path"), f"{name}.engine_path"),
                key_name=_str(e.get("key_name"), f"{name}.key_name"),
                enc=_str(e.get("enc"), f"{name}.enc"),
            )
        )
    others = []
    for kind in _OTHER_KINDS:
        entries = _list(raw.get(kind), f"{field}{kind}")
        if kind != "hckms":
            for i, e in enumerate(entries):
                _created(e, f"{field}{kind}[{i}]")
        if entries:
            others.append(kind)
    return age, tuple(kms), tuple(transit), tuple(others)


def _metadata(raw: Mapping[str, Any], *, where: str) -> Metadata:
    last_modified = gofmt.parse_rfc3339(_str(raw.get("lastmodified"), "lastmodified"))
    if last_modified is None:
        raise _MalformedError("lastmodified is not an RFC 3339 time")
    rules = {name: _str(raw.get(name), name) for name in _RULES}
    if sum(1 for v in rules.values() if v) > 1:
        raise _MalformedError(
            "it sets more than one of " + ", ".join(_RULES) + " (sops allows one)"
        )
    if not any(rules.values()):
        rules["unencrypted_suffix"] = "_unencrypted"  # sops's default
    if any(raw.get(kind) for kind in _KINDS):
        # The legacy layout: one key group, its keys at the top (key_groups is ignored).
        age, kms, transit, others = _group(raw, "")
    else:
        groups = _list(raw.get("key_groups"), "key_groups")
        if not groups:
            raise _MalformedError("it names no key that encrypts the data key")
        if len(groups) > 1:
            threshold = _int(raw.get("shamir_threshold"), "shamir_threshold")
            raise SopsDocumentError(
                f"{where}: the data key is split over {len(groups)} key groups (Shamir "
                f"secret sharing, shamir_threshold {threshold or len(groups)}), which "
                "secretsync does not support: encrypt it with a single key group; "
                "it is not synced"
            )
        age, kms, transit, others = _group(groups[0], "key_groups[0].")
    return Metadata(
        last_modified=last_modified,
        mac=_str(raw.get("mac"), "mac"),
        rules=Rules(
            **rules,
            mac_only_encrypted=_bool(raw.get("mac_only_encrypted"), "mac_only_encrypted"),
        ),
        age=age,
        kms=kms,
        transit=transit,
        other_keys=others,
    )


def not_sops(where: str) -> SopsDocumentError:
    """The error for a document without metadata."""
    return SopsDocumentError(
        f"{where}: not a SOPS document: it has no sops metadata (was it encrypted with "
        "sops?); it is not synced"
    )


def extract(branches: list[Branch], *, flattened: bool, where: str) -> Metadata:
    """Remove the metadata from the branches (in place) and read it
    (stores/metadata.go ExtractMetadata)."""
    entry: Any = None
    if flattened:
        if branches:
            kept, found = [], []
            for key, value in branches[0].items:
                if isinstance(key, str) and key.startswith(SOPS_PREFIX):
                    found.append((key[len(SOPS_PREFIX) :], value))
                else:
                    kept.append((key, value))
            branches[0].items = kept
            if found:
                entry = _unflatten(found, where=where)
    else:
        for index, branch in enumerate(branches):
            kept = []
            for key, value in branch.items:
                if key != SOPS_KEY:
                    kept.append((key, value))
                elif index == 0:
                    if entry is not None:
                        raise SopsDocumentError(
                            f"{where}: the document has two sops entries; it is not synced"
                        )
                    if not isinstance(value, Branch):
                        raise SopsDocumentError(
                            f"{where}: its sops entry is not a mapping; it is not synced"
                        )
                    entry = value
            branch.items = kept
    if entry is None:
        raise not_sops(where)
    try:
        return _metadata(_plain(entry), where=where)
    except _MalformedError as problem:
        raise SopsDocumentError(
            f"{where}: the sops metadata is malformed: {problem}; it is not synced"
        ) from None


# --- dotenv: stores/flatten.go -------------------------------------------------------------

_SEPARATOR = re.compile(r"(__map_|__list_)")


def _unflatten(items: list[tuple[str, Any]], *, where: str) -> dict[str, Any]:
    """The nested metadata from dotenv's sops_age__list_0__map_enc=... keys."""
    root: dict[Any, Any] = {}
    for key, value in items:
        parts = _SEPARATOR.split(key)
        tokens: list[str | int] = [parts[0]]
        for sep, text in zip(parts[1::2], parts[2::2], strict=True):
            if sep == "__map_":
                tokens.append(text)
            else:
                try:
                    tokens.append(int(text))
                except ValueError:
                    tokens.append(0)  # Go's Atoi error is ignored there: position 0
        node = root
        for token in tokens[:-1]:
            node = node.setdefault(("k", token), {})
            if not isinstance(node, dict):
                raise SopsDocumentError(
                    f"{where}: the sops metadata is malformed: key {key!r} clashes with "
                    "another; it is not synced"
                )
        if ("k", tokens[-1]) in node:
            raise SopsDocumentError(
                f"{where}: the sops metadata is malformed: key {key!r} is repeated or "
                "clashes with another; it is not synced"
            )
        node[("k", tokens[-1])] = ("leaf", value)
    built = _build(root, where=where)
    assert isinstance(built, dict)
    return built


def _build(node: Any, *, where: str) -> Any:
    if isinstance(node, tuple):
        return node[1]
    keys = [k[1] for k in node]
    if all(isinstance(k, int) for k in keys) and keys:
        if sorted(keys) != list(range(len(keys))):
            raise SopsDocumentError(
                f"{where}: the sops metadata is malformed: a flattened list has gaps; "
                "it is not synced"
            )
        return [_build(node[("k", i)], where=where) for i in range(len(keys))]
    if any(isinstance(k, int) for k in keys):
        raise SopsDocumentError(
            f"{where}: the sops metadata is malformed: an entry is both a list and a "
            "mapping; it is not synced"
        )
    return {k: _build(node[("k", k)], where=where) for k in keys}
