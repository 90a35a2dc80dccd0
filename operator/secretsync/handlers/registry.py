"""Builds the kopf registry the operator runs with (never kopf's global one).

Handlers are thin: they hand watch events to the engine, which owns scheduling,
provider calls, Secret writes and status. Only `on.event` handlers are used, so
kopf itself writes nothing to the watched objects: no finalizers, no progress
annotations, no status of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from typing import Any

import kopf

from secretsync.audit import AuditLog
from secretsync.config import OperatorConfig
from secretsync.engine.engine import Engine
from secretsync.engine.health import Health
from secretsync.engine.peering import PeeringMonitor
from secretsync.engine.sharding import ShardManager
from secretsync.events import webhook
from secretsync.handlers import kopfstate
from secretsync.kube import Kube, watch
from secretsync.metrics import Metrics

GROUP = "secretsync.io"
VERSION = "v1alpha1"
KINDS = ("SecretSync", "SecretStore", "ClusterSecretStore")
MANAGED = {"app.kubernetes.io/managed-by": "secretsync"}
MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
# ConfigMaps and Secrets holding SOPS documents carry this label (any value): their
# changes sync at once (docs/providers/sops.md). Only those are streamed.
SOPS_DOCUMENT_LABEL = "secretsync.io/sops-document"

logger = logging.getLogger("secretsync")


def configure_settings(settings: kopf.OperatorSettings) -> None:
    """kopf's settings, before it starts watching."""
    # The CRDs are installed before the operator starts (Helm's crds/, the kustomize base),
    # and the namespaces are the exact names given; so kopf need not list or watch
    # CustomResourceDefinitions or Namespaces, and the RBAC grants neither.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # Events come from the engine, not kopf's logs
    settings.watching.server_timeout = 300
    # kopf keeps a worker task (with its queue) per object for this long after its last
    # event. The handlers only hand events over, so a worker has nothing to wait for;
    # at 5 s (the default), a cold start of 10,000 keeps 20,000 of them alive at once.
    settings.queueing.idle_timeout = 0.2
    # Only the Secrets the operator manages are listed and streamed: filtered by the
    # apiserver, not here, so other teams' Secrets never reach this process (memory,
    # and exposure of their bytes).
    settings.watching.label_selectors["", "v1", "secrets"] = MANAGED_SELECTOR
    # ConfigMaps are watched only with --watch-sops-documents, and then only these.
    settings.watching.label_selectors["", "v1", "configmaps"] = SOPS_DOCUMENT_LABEL


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """Register the operator's handlers into a fresh registry."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(memo: kopf.Memo, **_: Any) -> None:
        kube: Kube = memo["kube"]
        metrics: Metrics = memo["metrics"]
        health: Health = memo["health"]
        engine = Engine(kube=kube, metrics=metrics, audit=AuditLog(), hmac_key=memo["hmac_key"])
        memo["engine"] = engine
        if config.webhook_port and config.webhook_secret:
            ns, name = config.webhook_secret
            try:
                memo["webhook"] = await webhook.start(
                    port=config.webhook_port,
                    load_key=lambda: kube.secret_value(ns, name, "key"),
                    notify=engine.notify,
                    active=lambda: engine.active,
                    metrics=metrics,
                    key_source=f"Secret {ns}/{name}",
                )
            except OSError as exc:
                raise kopf.PermanentError(
                    f"cannot listen on --webhook-port {config.webhook_port}: {exc.strerror}"
                ) from exc

        async def role(active: bool) -> None:
            metrics.active.set(1 if active else 0)
            await (engine.start() if active else engine.pause())

        if config.shards:
            await role(True)  # the engine runs; what it serves follows the shards
            memo["sharding"] = _start_sharding(config, memo, engine)
        elif config.peering is None:
            engine.scope_to(None, per_namespace_watches=not config.clusterwide)
            await role(True)
        else:
            engine.scope_to(None, per_namespace_watches=not config.clusterwide)
            # Standing by until the peering says otherwise: a replica that starts while
            # another acts must not act in between.
            await role(False)
            monitor = PeeringMonitor(
                kube=kube,
                name=config.peering,
                namespaces=list(config.namespaces) or [None],
                identity=memo["identity"],
                priority=memo["priority"],
                on_change=role,
            )
            memo["peering"] = asyncio.get_running_loop().create_task(
                monitor.run(), name="peering monitor"
            )
        if config.watch_sops_documents:
            # ConfigMaps are watched by kopf (sops_document below); Secrets need a stream
            # of their own (kube/watch.py).
            memo["document_watches"] = [
                asyncio.get_running_loop().create_task(
                    watch.watch_labelled_secrets(
                        kube,
                        namespace=namespace,
                        label_selector=SOPS_DOCUMENT_LABEL,
                        on_change=functools.partial(engine.document_changed, "Secret"),
                    ),
                    name="SOPS document Secrets",
                )
                for namespace in (config.namespaces or (None,))
            ]
        health.engine = engine
        scope = "all namespaces" if config.clusterwide else ", ".join(config.namespaces)
        if config.shards:
            scope = f"the namespaces of the shards this replica holds (of {scope})"
        logger.info("watching %s.%s in %s", "/".join(KINDS), GROUP, scope)

    @kopf.on.cleanup(id="shutdown", registry=registry)
    async def shutdown(memo: kopf.Memo, **_: Any) -> None:
        if "sharding" in memo:
            task, manager = memo["sharding"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # Every shard given up, so that the other replicas take it at their next step.
            await manager.close()
        if "peering" in memo:
            memo["peering"].cancel()
            # A role change under way finishes (or is cut short) before the engine stops.
            await asyncio.gather(memo["peering"], return_exceptions=True)
        for task in memo.get("document_watches", ()):
            task.cancel()
        if "webhook" in memo:
            await webhook.stop(memo["webhook"])
        if "engine" in memo:
            await memo["engine"].stop()

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a Pod: the mounted ServiceAccount; elsewhere: KUBECONFIG, like kubectl.
        info = kopf.login_with_service_account(**kwargs)
        if info is None:
            return kopf.login_with_kubeconfig(**kwargs)
        return dataclasses.replace(info, server=in_cluster_server(info.server))

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

    # The label filter is also applied by the apiserver (configure_settings); here it
    # keeps the handler correct should the settings ever lose it.
    @kopf.on.event("", "v1", "secrets", labels=MANAGED, id="managed-secret", registry=registry)
    async def managed_secret(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        body = event["object"]
        meta = body["metadata"]
        deleted = event["type"] == "DELETED"
        memo["engine"].observe_secret(
            meta["namespace"],
            None if deleted else body,
            meta["name"],
            listing=event["type"] is None,  # kopf's listing: a watch (re)started
        )

    if config.watch_sops_documents:
        _register_sops_documents(registry)
    return registry


def _register_sops_documents(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.event(
        "",
        "v1",
        "configmaps",
        labels={SOPS_DOCUMENT_LABEL: kopf.PRESENT},
        id="sops-document",
        registry=registry,
    )
    async def sops_document(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        # Only changes: a listing (each watch restart) says nothing changed, and a
        # deletion syncs nothing at once (a re-create, as Argo CD's Replace does, is
        # followed by an ADDED; a document really gone is found by the next refresh).
        if event["type"] not in ("ADDED", "MODIFIED"):
            return
        meta = event["object"]["metadata"]
        memo["engine"].document_changed("ConfigMap", meta["namespace"], meta["name"])


def in_cluster_server(default: str) -> str:
    """The apiserver as the Pod's environment names it (KUBERNETES_SERVICE_HOST and _PORT),
    the way client-go's in-cluster config and the kubernetes client find it. kopf's own
    service-account login uses the DNS name kubernetes.default.svc, which needs cluster
    DNS; then the watches and the writes could reach the API by different paths, and
    one could fail while the other works."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return default
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"https://{host}:{port}"


def _register_store(registry: kopf.OperatorRegistry, plural: str, kind: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=plural, registry=registry)
    async def store(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        body, engine = event["object"], memo["engine"]
        meta = body["metadata"]
        if event["type"] == "DELETED":
            engine.forget_store(kind, meta.get("namespace") or "", meta["name"])
        else:
            engine.observe_store(kind, body)


def _start_sharding(
    config: OperatorConfig, memo: kopf.Memo, engine: Engine
) -> tuple[asyncio.Task[None], ShardManager]:
    """Run the shard Leases; kopf and the engine follow the namespaces they give."""
    kube: Kube = memo["kube"]
    metrics: Metrics = memo["metrics"]
    engine.scope_to((), per_namespace_watches=True)

    async def changed(added: frozenset[str], removed: frozenset[str]) -> None:
        # Given up: no more events or writes there, rounds ended, then the watches stop.
        if removed:
            await engine.release(removed)
        engine.adopt(added)  # before the watches start, so their first events count
        await kopfstate.watch_only(memo["insights"], manager.served)
        logger.info(
            "sharding: %s; now serving %d namespaces (+%d, -%d)",
            manager.describe(),
            len(manager.served),
            len(added),
            len(removed),
        )

    manager = ShardManager(
        kube=kube,
        namespace=config.state_namespace,
        group=config.shard_group,
        shards=config.shards,
        identity=memo["identity"],
        on_change=changed,
        only=config.namespaces,
    )
    kube.fence = manager.serves
    metrics.shards_held.set_function(lambda: len(manager.held))
    metrics.active.set_function(lambda: 1 if manager.held else 0)
    memo["health"].sharding = manager
    task = asyncio.get_running_loop().create_task(manager.run(), name="shard leases")
    return task, manager
