"""Identities: which identity a store uses for a SecretSync (plan), and sessions
cached per identity, renewed before they expire."""
