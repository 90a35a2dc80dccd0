"""Builds the kopf registry the operator runs with (never kopf's global one)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from secretsync.config import OperatorConfig

GROUP = "secretsync.io"
KINDS = ("SecretSync", "SecretStore", "ClusterSecretStore")

logger = logging.getLogger("secretsync")


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """Register the operator's handlers into a fresh registry."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Our own prefix for kopf's bookkeeping, so it never collides with
        # another kopf operator's marks on the same objects.
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING  # Events come from the engine, not kopf's logs
        scope = "all namespaces" if config.clusterwide else ", ".join(config.namespaces)
        logger.info("watching %s.%s in %s", "/".join(KINDS), GROUP, scope)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a Pod: the mounted ServiceAccount; elsewhere: KUBECONFIG, like kubectl.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    return registry
