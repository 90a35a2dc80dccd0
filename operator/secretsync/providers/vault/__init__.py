"""HashiCorp Vault (and OpenBao) KV v1 and v2."""

from secretsync.providers.vault.backend import VaultBackend

__all__ = ["VaultBackend"]
