"""kopf handlers: the only place kopf decorators live. Each handler parses,
delegates to the engine and reports; none holds logic of its own."""

from secretsync.handlers.registry import build_registry

__all__ = ["build_registry"]
