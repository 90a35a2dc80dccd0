"""The data key from age stanzas, with pyrage (age/keysource.go's Decrypt).

The identities are the text of an age key file, as SOPS_AGE_KEY_FILE holds: one
AGE-SECRET-KEY-1... per line, '#' comments and blank lines ignored. A key file we
cannot use is a credential refused (ProviderAuthError: AuthFailed, retried, and the
session made again, so a repaired key Secret is read); a document no identity opens is
the document's (SopsDocumentError). Messages name recipients (public keys)
and line numbers, never an identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyrage

from secretsync.errors import ProviderAuthError
from secretsync.providers.sops.errors import SopsDocumentError
from secretsync.providers.sops.metadata import AgeStanza

_X25519 = "AGE-SECRET-KEY-1"


def parse_identities(identities: bytes) -> list[pyrage.x25519.Identity]:
    """The X25519 identities of an age key file."""
    try:
        text = identities.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderAuthError("sops: the age key file is not UTF-8 text") from None
    parsed = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_X25519):
            raise ProviderAuthError(
                f"sops: line {number} of the age key file is not an age X25519 identity "
                f"({_X25519}...); plugin, post-quantum and SSH identities are not supported"
            )
        try:
            parsed.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ProviderAuthError(
                f"sops: line {number} of the age key file is a malformed age identity"
            ) from None
    if not parsed:
        raise ProviderAuthError("sops: the age key file holds no age identity")
    return parsed


def check_age_identities(identities: bytes) -> None:
    """Raise ProviderAuthError unless the key file holds usable identities."""
    parse_identities(identities)


def unwrap_age(stanzas: Sequence[AgeStanza], identities: bytes, *, where: str) -> bytes:
    """The data key, from the first stanza one of the identities opens."""
    keys = parse_identities(identities)
    if not stanzas:
        raise SopsDocumentError(f"{where}: the document has no age stanza; it is not synced")
    malformed = []
    for stanza in stanzas:
        try:
            return pyrage.decrypt(stanza.enc.encode("utf-8", "surrogateescape"), keys)
        except pyrage.DecryptError as error:
            # pyrage says "No matching keys found" when no identity is a recipient;
            # anything else is a stanza that is not a well-formed age file.
            if "no matching keys" not in str(error).lower():
                malformed.append(stanza.recipient)
    ours = ", ".join(str(key.to_public()) for key in keys)
    theirs = ", ".join(s.recipient for s in stanzas)
    if len(malformed) == len(stanzas):
        raise SopsDocumentError(
            f"{where}: the age stanza of recipient {', '.join(malformed)} is corrupt (not "
            "an age file holding the data key); it is not synced"
        )
    extra = f"; the stanza of {', '.join(malformed)} is corrupt" if malformed else ""
    raise SopsDocumentError(
        f"{where}: no age identity of the store opens the document: it is encrypted for "
        f"{theirs}, the key file holds identities for {ours}{extra}; it is not synced"
    )
