"""HashiCorp Vault (and OpenBao) KV v1 and v2."""
