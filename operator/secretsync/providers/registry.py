"""The backend for a store's provider spec, found through Python entry points.

Every provider, built in or installed as a package, is an entry point of the group
`secretsync.providers` (docs/providers/plugins.md): its name is the provider's, its object
a factory called with the store's provider section (the typed model for the built-in
`aws`, `vault` and `sops`; a `PluginProvider` for `spec.provider.plugin`) that returns a
`Backend`. The built-ins register in secretsync's own pyproject.toml, exactly as a plug-in
does in its own.

A factory is loaded when a store first asks for it, so an operator reading only Vault
never imports boto3, and the reverse.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any, cast

from secretsync.errors import ProviderConfigError
from secretsync.models.store import ProviderSpec
from secretsync.providers.base import Backend

GROUP = "secretsync.providers"
BUILT_IN = ("aws", "vault", "sops")  # spec.provider's own fields; the rest go through `plugin`
DISTRIBUTION = "secretsync"  # whose entry points the built-in names must come from

Factory = Callable[[Any], Backend]
logger = logging.getLogger("secretsync.providers")


def installed() -> dict[str, importlib.metadata.EntryPoint]:
    """Every provider's entry point by name. A built-in name is taken only from secretsync
    itself, so an installed package cannot stand in for the aws, vault or sops provider."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        owner = ep.dist.name if ep.dist is not None else ""
        if ep.name in BUILT_IN and owner != DISTRIBUTION:
            logger.warning(
                "ignoring provider entry point %r of %s: the name is a built-in provider's",
                ep.name,
                owner or "an unknown package",
            )
            continue
        found.setdefault(ep.name, ep)
    return found


@functools.cache
def _factory(name: str) -> Factory:
    entry = installed().get(name)
    if entry is None:
        names = ", ".join(sorted(installed())) or "none"
        raise ProviderConfigError(
            f"spec.provider: no provider named {name!r} is installed (entry-point group "
            f"{GROUP}; installed: {names}); see docs/providers/plugins.md"
        )
    try:
        loaded = entry.load()
    except Exception as exc:  # noqa: BLE001 - a broken plug-in must not stop the operator
        raise ProviderConfigError(
            f"spec.provider: the provider {name!r} ({entry.value}) could not be loaded: "
            f"{type(exc).__name__}"
        ) from None
    if not callable(loaded):
        raise ProviderConfigError(f"spec.provider: the provider {name!r} is not a factory")
    return cast(Factory, loaded)


def backend_for(provider: ProviderSpec) -> Backend:
    """The Backend configured from `spec.provider`."""
    set_ = [n for n in (*BUILT_IN, "plugin") if getattr(provider, n) is not None]
    if len(set_) != 1:
        raise ProviderConfigError(
            "spec.provider: set exactly one of aws, vault, sops or plugin"
            + (f", not {' and '.join(set_)}" if set_ else "")
        )
    name = provider.kind()
    section = provider.plugin if provider.plugin is not None else getattr(provider, name)
    return _factory(name)(section)
