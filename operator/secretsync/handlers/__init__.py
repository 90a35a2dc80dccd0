"""kopf handlers: the only place kopf decorators live. Each handler parses,
delegates to the engine and reports; none holds logic of its own."""

from secretsync.handlers.registry import MANAGED_SELECTOR, build_registry, configure_settings

__all__ = ["MANAGED_SELECTOR", "build_registry", "configure_settings"]
