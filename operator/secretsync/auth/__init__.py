"""Identities: ServiceAccount tokens, STS, Vault logins; cached per identity."""
