"""Builds the kopf registry the operator runs with (never kopf's global one).

Handlers are thin: they hand watch events to the engine, which owns scheduling,
provider calls, Secret writes and status. Only `on.event` handlers are used, so
kopf itself writes nothing to the watched objects: no finalizers, no progress
annotations, no status of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import kopf

from secretsync.audit import AuditLog
from secretsync.config import OperatorConfig
from secretsync.engine.engine import Engine
from secretsync.errors import KubeError
from secretsync.events import webhook
from secretsync.kube import Kube
from secretsync.metrics import Metrics

GROUP = "secretsync.io"
VERSION = "v1alpha1"
KINDS = ("SecretSync", "SecretStore", "ClusterSecretStore")
STATE_SECRET = "secretsync-state"  # noqa: S105 - a Secret name, not a password
MANAGED = {"app.kubernetes.io/managed-by": "secretsync"}

logger = logging.getLogger("secretsync")


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """Register the operator's handlers into a fresh registry."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # Events come from the engine, not kopf's logs
        settings.watching.server_timeout = 300
        kube = Kube.connect()
        try:
            key = await kube.ensure_secret_key(
                config.state_namespace, STATE_SECRET, "hmac-key", lambda: secrets.token_bytes(32)
            )
        except KubeError as exc:
            raise kopf.PermanentError(
                f"cannot read or create Secret {config.state_namespace}/{STATE_SECRET} (the key "
                f"of status.dataHash): {exc}; create the namespace or pass --state-namespace"
            ) from exc
        metrics: Metrics = memo["metrics"]
        engine = Engine(kube=kube, metrics=metrics, audit=AuditLog(), hmac_key=key)
        memo["kube"], memo["engine"] = kube, engine
        memo["loop"] = asyncio.get_running_loop().create_task(engine.run(), name="engine")
        if config.webhook_port and config.webhook_secret:
            ns, name = config.webhook_secret
            try:
                memo["webhook"] = await webhook.start(
                    port=config.webhook_port,
                    load_key=lambda: kube.secret_value(ns, name, "key"),
                    notify=engine.notify,
                    metrics=metrics,
                    key_source=f"Secret {ns}/{name}",
                )
            except OSError as exc:
                raise kopf.PermanentError(
                    f"cannot listen on --webhook-port {config.webhook_port}: {exc.strerror}"
                ) from exc
        scope = "all namespaces" if config.clusterwide else ", ".join(config.namespaces)
        logger.info("watching %s.%s in %s", "/".join(KINDS), GROUP, scope)

    @kopf.on.cleanup(id="shutdown", registry=registry)
    async def shutdown(memo: kopf.Memo, **_: Any) -> None:
        if "webhook" in memo:
            await webhook.stop(memo["webhook"])
        if "loop" in memo:
            memo["loop"].cancel()
            await memo["engine"].stop()
            await memo["kube"].close()

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a Pod: the mounted ServiceAccount; elsewhere: KUBECONFIG, like kubectl.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    # Event handlers are coroutines so they run on the engine's loop, not in kopf's threads.
    @kopf.on.event(GROUP, VERSION, "secretsyncs", id="secretsync", registry=registry)
    async def secretsync(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        body, engine = event["object"], memo["engine"]
        if event["type"] == "DELETED":
            engine.forget_sync(body["metadata"]["namespace"], body["metadata"]["name"])
        else:
            engine.observe_sync(body)

    for plural, kind in (
        ("secretstores", "SecretStore"),
        ("clustersecretstores", "ClusterSecretStore"),
    ):
        _register_store(registry, plural, kind)

    @kopf.on.event("", "v1", "secrets", labels=MANAGED, id="managed-secret", registry=registry)
    async def managed_secret(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        body = event["object"]
        meta = body["metadata"]
        deleted = event["type"] == "DELETED"
        memo["engine"].observe_secret(meta["namespace"], None if deleted else body, meta["name"])

    return registry


def _register_store(registry: kopf.OperatorRegistry, plural: str, kind: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=plural, registry=registry)
    async def store(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        body, engine = event["object"], memo["engine"]
        meta = body["metadata"]
        if event["type"] == "DELETED":
            engine.forget_store(kind, meta.get("namespace") or "", meta["name"])
        else:
            engine.observe_store(kind, body)
