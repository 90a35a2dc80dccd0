"""A label-selected watch of Secrets outside kopf, for SOPS documents kept in Secrets.

kopf watches one stream per resource, and the operator's Secret stream is filtered by the
apiserver to the Secrets it manages (handlers.configure_settings): a label selector
cannot say "managed, or a document". So Secrets labelled as documents get a stream of
their own: list (for a resourceVersion), then watch from there, resuming where each watch
ended; a fresh list after a 410 or a failure (with backoff). Only changes are told (as
for the ConfigMaps, handlers/registry.py), and only (namespace, name) reaches the caller:
the bodies, encrypted documents, are dropped in the watching thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import kubernetes

from secretsync.kube.client import Kube

logger = logging.getLogger("secretsync.kube")

WATCH_SECONDS = 300  # the server ends each watch after this; then a fresh list
MAX_BACKOFF = 60.0

OnChange = Callable[[str, str], object]  # (namespace, name); what it returns is ignored


async def watch_labelled_secrets(
    kube: Kube, *, namespace: str | None, label_selector: str, on_change: OnChange
) -> None:
    """Call on_change for every change to a Secret with the label (added or modified),
    until cancelled. A failure is logged and retried with backoff."""
    backoff = 1.0
    while True:
        try:
            await _one_watch(
                kube, namespace=namespace, selector=label_selector, on_change=on_change
            )
            backoff = 1.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the type only: a body never reaches a log
            where = f"namespace {namespace}" if namespace else "all namespaces"
            logger.warning(
                "watching Secrets labelled %s in %s failed (%s); again in %.0fs",
                label_selector,
                where,
                type(exc).__name__,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


async def _one_watch(
    kube: Kube, *, namespace: str | None, selector: str, on_change: OnChange
) -> None:
    """One list and the watch that follows it, in a daemon thread: a watch blocks on its
    socket, and the process must be able to exit while one waits."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    stop = threading.Event()
    core = kubernetes.client.CoreV1Api(kube.api_client)

    def tell(ns: str, name: str) -> None:
        if not stop.is_set():
            loop.call_soon_threadsafe(on_change, ns, name)

    def finish(error: BaseException | None) -> None:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            _stream(core, namespace, selector, tell, stop)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the awaiting side must hear
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(finish, error)

    thread = threading.Thread(target=run, name="secretsync-document-watch", daemon=True)
    thread.start()
    try:
        await done
    finally:
        stop.set()


def _stream(
    core: Any,
    namespace: str | None,
    selector: str,
    tell: Callable[[str, str], None],
    stop: threading.Event,
) -> None:
    """List once (to learn where to start; nothing is told), then watch, resuming where
    the last watch ended, and tell every change. A 410 ends it: the caller lists again."""
    args: tuple[str, ...] = (namespace,) if namespace else ()
    lister = core.list_namespaced_secret if namespace else core.list_secret_for_all_namespaces
    version = lister(*args, label_selector=selector, limit=1, _request_timeout=30)
    version = version.metadata.resource_version
    watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    while not stop.is_set():
        for event in watch.stream(  # type: ignore[no-untyped-call]
            lister,
            *args,
            label_selector=selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_SECONDS + 30,
        ):
            if stop.is_set():
                watch.stop()  # type: ignore[no-untyped-call]
                return
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":  # 410 Gone: too old to resume from
                raise ValueError("the watch was expired by the server")
            version = obj.metadata.resource_version
            if kind in ("ADDED", "MODIFIED"):
                tell(obj.metadata.namespace, obj.metadata.name)
