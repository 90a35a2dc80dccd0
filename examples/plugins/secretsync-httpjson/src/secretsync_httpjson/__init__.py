"""secretsync-httpjson: an example provider plug-in for secretsync.

It reads secrets from a small JSON-over-HTTP service (secretsync_httpjson.server is a
reference implementation of it, for tests and demos), presenting each namespace's
ServiceAccount token as a bearer token. secretsync finds it through the entry point
`httpjson` of the group `secretsync.providers` (see pyproject.toml).
"""

from secretsync_httpjson.backend import HttpJsonBackend

__all__ = ["HttpJsonBackend"]
