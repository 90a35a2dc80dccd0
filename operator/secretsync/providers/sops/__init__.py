"""SOPS-encrypted documents (docs/providers/sops.md)."""

from secretsync.providers.sops.backend import SopsBackend

__all__ = ["SopsBackend"]
