"""The one error a SOPS document raises when it cannot be trusted or read."""

from __future__ import annotations

from secretsync.errors import DocumentRefusedError


class SopsDocumentError(DocumentRefusedError):
    """A SOPS document that is malformed, tampered with, or not openable with the key given.

    It is a per-ref failure, like a malformed value: the document is not synced, the
    other refs of the sync are. The message names the document (`where`), the field or
    key path and what is wrong; never a value, a data key or ciphertext.
    """
