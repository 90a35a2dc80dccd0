"""The only place the Kubernetes API is called.

The official client is synchronous; every call runs in a worker thread so the
operator's event loop never blocks. API errors become the operator's own
(KubeError, KubeNotFoundError), chained to the client's exception, whose text
names objects, never Secret data.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from secretsync.errors import (
    KubeConflictError,
    KubeError,
    KubeFencedError,
    KubeForbiddenError,
    KubeNotFoundError,
)
from secretsync.kube.leases import LeaseApi

T = TypeVar("T")
GROUP = "secretsync.io"
VERSION = "v1alpha1"
PLURALS = {
    "SecretSync": "secretsyncs",
    "SecretStore": "secretstores",
    "ClusterSecretStore": "clustersecretstores",
}


WORKERS = 16  # threads for API calls, which mostly wait on the network
REQUEST_TIMEOUT = 30  # seconds; a hung connection must not hold a sync forever
MERGE_PATCH = "application/merge-patch+json"  # RFC 7386: lists are replaced, nulls delete
_WORKLOADS = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretObject:
    """A Secret as the engine needs it; `data` is decoded bytes and never printed."""

    namespace: str
    name: str
    type: str
    data: Mapping[str, bytes] = dataclasses.field(repr=False)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    owner_uids: tuple[str, ...]
    immutable: bool
    resource_version: str
    # The controller's (apiVersion, kind, name), if another object controls the Secret.
    controller: tuple[str, str, str] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Owner:
    """An ownerReference to a SecretSync."""

    name: str
    uid: str


def _owner_refs(owner: Owner | None) -> list[dict[str, Any]]:
    if owner is None:
        return []
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SecretSync",
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _unb64(data: Mapping[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


class Kube(LeaseApi):
    """Typed, asynchronous access to the few API calls the operator makes."""

    def __init__(self, api: Any, *, workers: int = WORKERS) -> None:
        self._api = api
        self._core = kubernetes.client.CoreV1Api(api)
        self._apps = kubernetes.client.AppsV1Api(api)
        self._custom = kubernetes.client.CustomObjectsApi(api)
        # The default executor has cpu+4 threads; API calls mostly wait on the network.
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kube")
        self._coordination = kubernetes.client.CoordinationV1Api(api)
        self._lease_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="lease")
        self._inflight: collections.Counter[str] = collections.Counter()
        self._inflight_lock = threading.Lock()
        # Sharding sets this: whether this replica may write in a namespace now. Checked
        # before every write on a served object, so that a replica whose shard Lease
        # lapsed (or was handed on) cannot write after another one took over.
        self.fence: Callable[[str], bool] | None = None

    @property
    def api_client(self) -> Any:
        """The kubernetes ApiClient (kube/watch.py streams with it)."""
        return self._api

    @classmethod
    def connect(cls, *, workers: int = WORKERS) -> Kube:
        """In a Pod, the mounted ServiceAccount; elsewhere KUBECONFIG, like kubectl."""
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            # KUBECONFIG as it is now (the client reads it once, when it is imported).
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=config
            )
        # One pooled connection per worker thread: the default (5 per core) made the
        # threads open new TLS connections all the time (docs/benchmarks.md).
        config.connection_pool_maxsize = workers
        return cls(kubernetes.client.ApiClient(config), workers=workers)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lease_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._api.close)

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._send(self._pool, None, what, functools.partial(fn, *args, **kwargs))

    async def _call_fenced(
        self, namespace: str, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """A write on an object of the namespace, refused unless this replica serves it
        at the moment the request leaves (sharding's `fence`)."""
        return await self._send(self._pool, namespace, what, functools.partial(fn, *args, **kwargs))

    async def _call_lease(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Lease calls have threads of their own: a renewal never queues behind a burst
        of writes (which would let the Lease lapse under load)."""
        return await self._send(
            self._lease_pool, None, what, functools.partial(fn, *args, **kwargs)
        )

    def _fenced(self, namespace: str, what: str, call: Callable[[], T]) -> T:
        """In the worker thread, right before the request is sent: checked and counted
        under one lock, so that `drain` sees every write that passed the fence."""
        with self._inflight_lock:
            if self.fence is not None and not self.fence(namespace):
                raise KubeFencedError(
                    f"{what}: not sent, namespace {namespace or '(cluster)'} is not served by "
                    "this replica now (its shard's Lease is not held)"
                )
            self._inflight[namespace] += 1
        try:
            return call()
        finally:
            with self._inflight_lock:
                self._inflight[namespace] -= 1
                if not self._inflight[namespace]:
                    del self._inflight[namespace]

    async def drain(self, namespaces: Collection[str]) -> None:
        """Wait until no write that passed the fence in these namespaces is still under
        way (a shard is released only then); a request ends within REQUEST_TIMEOUT."""
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            with self._inflight_lock:
                if not any(self._inflight.get(ns) for ns in namespaces):
                    return
            await asyncio.sleep(0.02)

    async def _send(
        self,
        pool: concurrent.futures.ThreadPoolExecutor,
        fenced_in: str | None,
        what: str,
        request: Callable[..., T],
    ) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(request, _request_timeout=REQUEST_TIMEOUT)
        if fenced_in is not None:
            call = functools.partial(self._fenced, fenced_in, what, call)
        try:
            return await loop.run_in_executor(pool, call)
        except ApiException as exc:
            if exc.status == 404:
                raise KubeNotFoundError(f"{what}: not found") from None
            if exc.status == 409:
                raise KubeConflictError(f"{what}: HTTP 409 {exc.reason}") from None
            if exc.status in (401, 403):
                raise KubeForbiddenError(f"{what}: HTTP {exc.status} {exc.reason}") from None
            raise KubeError(f"{what}: HTTP {exc.status} {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The apiserver unreachable or slow: a failure like any other, never a crash.
            raise KubeError(f"{what}: {type(exc).__name__}") from None

    # --- Secrets --------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> SecretObject | None:
        """The Secret, or None if it does not exist."""
        try:
            raw: Any = await self._call(
                f"read Secret {namespace}/{name}",
                self._core.read_namespaced_secret,
                name,
                namespace,
            )
        except KubeNotFoundError:
            return None
        meta = raw.metadata
        return SecretObject(
            namespace=namespace,
            name=name,
            type=raw.type or "Opaque",
            data=_unb64(raw.data),
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
            owner_uids=tuple(o.uid for o in meta.owner_references or ()),
            immutable=bool(raw.immutable),
            resource_version=meta.resource_version or "",
            controller=next(
                (
                    (o.api_version, o.kind, o.name)
                    for o in meta.owner_references or ()
                    if o.controller
                ),
                None,
            ),
        )

    async def secret_value(self, namespace: str, name: str, key: str) -> bytes:
        """One key of a Secret (a credential); a clear error if it is missing."""
        secret = await self.get_secret(namespace, name)
        if secret is None:
            raise KubeNotFoundError(f"Secret {namespace}/{name} does not exist")
        if key not in secret.data:
            raise KubeNotFoundError(f"Secret {namespace}/{name} has no key {key!r}")
        return secret.data[key]

    async def config_map_value(self, namespace: str, name: str, key: str) -> bytes:
        raw: Any = await self._call(
            f"read ConfigMap {namespace}/{name}",
            self._core.read_namespaced_config_map,
            name,
            namespace,
        )
        if key not in (raw.data or {}):
            raise KubeNotFoundError(f"ConfigMap {namespace}/{name} has no key {key!r}")
        return str(raw.data[key]).encode()

    async def get_config_map(self, namespace: str, name: str) -> dict[str, bytes]:
        """A ConfigMap's data and binaryData as bytes (KubeNotFoundError if it does not
        exist)."""
        raw: Any = await self._call(
            f"read ConfigMap {namespace}/{name}",
            self._core.read_namespaced_config_map,
            name,
            namespace,
        )
        data = {k: str(v).encode() for k, v in (raw.data or {}).items()}
        data.update(_unb64(raw.binary_data))
        return data

    async def create_secret(
        self,
        *,
        namespace: str,
        name: str,
        type_: str,
        data: Mapping[str, bytes],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        owner: Owner | None,
        immutable: bool,
    ) -> str:
        """Create it; its resourceVersion."""
        owners = _owner_refs(owner) or None
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": dict(annotations),
                **({"ownerReferences": owners} if owners else {}),
            },
            "type": type_,
            "data": _b64(data),
            **({"immutable": True} if immutable else {}),
        }
        created: Any = await self._call_fenced(
            namespace,
            f"create Secret {namespace}/{name}",
            self._core.create_namespaced_secret,
            namespace,
            body,
        )
        return str(created.metadata.resource_version or "")

    async def patch_secret(
        self,
        *,
        namespace: str,
        name: str,
        data: Mapping[str, bytes | None],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        resource_version: str,
        owner: Owner | Literal["keep"] | None = "keep",
    ) -> str:
        """A JSON merge patch: keys mapped to None are removed, other keys are left alone;
        `owner` sets the ownerReferences (None: none), "keep" leaves them.

        The resourceVersion makes it conditional, so a concurrent edit is never
        overwritten blindly; the engine retries on the next event.
        """
        meta: dict[str, Any] = {
            "labels": dict(labels),
            "annotations": dict(annotations),
            "resourceVersion": resource_version,
        }
        if owner != "keep":
            meta["ownerReferences"] = _owner_refs(owner)
        body = {
            "metadata": meta,
            "data": {
                k: (None if v is None else base64.b64encode(v).decode()) for k, v in data.items()
            },
        }
        patched: Any = await self._call_fenced(
            namespace,
            f"patch Secret {namespace}/{name}",
            self._core.patch_namespaced_secret,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
        )
        return str(patched.metadata.resource_version or "")

    async def delete_secret(self, namespace: str, name: str) -> None:
        with contextlib.suppress(KubeNotFoundError):
            await self._call_fenced(
                namespace,
                f"delete Secret {namespace}/{name}",
                self._core.delete_namespaced_secret,
                name,
                namespace,
            )

    # --- identities -----------------------------------------------------------------

    async def token_request(
        self, *, namespace: str, service_account: str, audiences: tuple[str, ...], seconds: int
    ) -> tuple[str, float]:
        """A ServiceAccount token from TokenRequest and its expiry (epoch seconds)."""
        body = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=list(audiences), expiration_seconds=seconds
            )
        )
        resp = await self._call(
            f"TokenRequest for ServiceAccount {namespace}/{service_account}",
            self._core.create_namespaced_service_account_token,
            service_account,
            namespace,
            body,
        )
        status = resp.status
        if status is None or not status.token:
            raise KubeError(f"TokenRequest for {namespace}/{service_account} returned no token")
        expiry = status.expiration_timestamp
        expires = (
            expiry.timestamp()
            if isinstance(expiry, datetime.datetime)
            else datetime.datetime.now(datetime.UTC).timestamp() + seconds
        )
        return str(status.token), expires

    async def get_json(
        self, what: str, path: str, query: list[tuple[str, str | int]], accept: str
    ) -> dict[str, Any]:
        """A GET of an API path as plain JSON (kube/inventory.py's lists), without building
        the typed client's model objects."""
        api = self._api

        def call(_request_timeout: float | None = None) -> dict[str, Any]:
            method, url, headers, body, post = api.param_serialize(
                "GET", path, query_params=query, header_params={"Accept": accept},
                auth_settings=["BearerToken"],
            )  # fmt: skip
            response = api.call_api(
                method, url, headers, body, post, _request_timeout=_request_timeout
            )
            response.read()
            if not 200 <= response.status < 300:
                # The error the typed calls raise, so that _send maps it (403, 404...).
                raise ApiException(http_resp=response)
            page: dict[str, Any] = json.loads(response.data)
            return page

        return await self._call(what, call)

    async def namespace_labels(self, name: str) -> dict[str, str]:
        raw: Any = await self._call(f"read Namespace {name}", self._core.read_namespace, name)
        return dict(raw.metadata.labels or {})

    # --- custom resources -----------------------------------------------------------------

    async def patch_status(
        self, *, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge-patch the status subresource."""
        body = {"status": dict(status)}
        where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        if namespace:
            await self._call_fenced(
                namespace,
                f"patch status of {where}",
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
                name,
                body,
                _content_type=MERGE_PATCH,
            )
        else:
            await self._call_fenced(
                namespace,
                f"patch status of {where}",
                self._custom.patch_cluster_custom_object_status,
                GROUP,
                VERSION,
                PLURALS[kind],
                name,
                body,
                _content_type=MERGE_PATCH,
            )

    async def post_event(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        type_: str,
        reason: str,
        message: str,
    ) -> None:
        """A core/v1 Event about a custom resource (best effort: failures are not fatal)."""
        now = datetime.datetime.now(datetime.UTC)
        body = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                generate_name=f"{name}.", namespace=namespace or "default"
            ),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=kind,
                name=name,
                namespace=namespace or None,
                uid=uid,
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=kubernetes.client.V1EventSource(component="secretsync"),
            reporting_component="secretsync.io/operator",
            reporting_instance="secretsync",
        )
        await self._call_fenced(
            namespace,
            f"post Event for {kind} {name}",
            self._core.create_namespaced_event,
            namespace or "default",
            body,
        )

    # --- workloads ---------------------------------------------------------------------------

    async def workload_annotation(
        self, *, kind: str, namespace: str, name: str, key: str
    ) -> str | None:
        """A pod-template annotation of a Deployment, StatefulSet or DaemonSet
        (KubeNotFoundError if the workload does not exist)."""
        read = getattr(self._apps, f"read_namespaced_{_WORKLOADS[kind]}")
        raw: Any = await self._call(f"read {kind} {namespace}/{name}", read, name, namespace)
        meta = raw.spec.template.metadata
        annotations = (meta.annotations if meta is not None else None) or {}
        value = annotations.get(key)
        return str(value) if value is not None else None

    async def set_workload_annotation(
        self, *, kind: str, namespace: str, name: str, key: str, value: str
    ) -> None:
        """Set a pod-template annotation: the workload controller rolls its pods."""
        patch = getattr(self._apps, f"patch_namespaced_{_WORKLOADS[kind]}")
        body = {"spec": {"template": {"metadata": {"annotations": {key: value}}}}}
        await self._call_fenced(
            namespace,
            f"patch {kind} {namespace}/{name}",
            patch,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
        )

    # --- peering and health ---------------------------------------------------------------

    async def peering_status(self, name: str, *, namespace: str | None) -> dict[str, Any]:
        """The peers recorded in kopf's ClusterKopfPeering `name` (namespace None) or
        KopfPeering `name` in the namespace; {} if it does not exist. A list narrowed by
        name, because the operator's RBAC grants kopf's list/watch, not get."""
        selector = f"metadata.name={name}"
        if namespace is None:
            raw: Any = await self._call(
                f"list ClusterKopfPeering {name}",
                self._custom.list_cluster_custom_object,
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                field_selector=selector,
            )
        else:
            raw = await self._call(
                f"list KopfPeering {namespace}/{name}",
                self._custom.list_namespaced_custom_object,
                "kopf.dev",
                "v1",
                namespace,
                "kopfpeerings",
                field_selector=selector,
            )
        items = raw.get("items") or []
        status = (items[0].get("status") or {}) if items else {}
        return dict(status) if isinstance(status, dict) else {}

    async def secretsync_uid(self, namespace: str, name: str) -> str | None:
        """The uid of SecretSync namespace/name, None if it does not exist (a list narrowed
        by name: the operator's RBAC grants list and watch on SecretSyncs, not get)."""
        raw: Any = await self._call(
            f"list SecretSync {namespace}/{name}",
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "secretsyncs",
            field_selector=f"metadata.name={name}",
        )
        items = raw.get("items") or []
        return str(items[0]["metadata"]["uid"]) if items else None

    async def can_list(self, *, namespace: str | None, label_selector: str | None = None) -> None:
        """List one SecretSync and one managed Secret in the namespace (None: cluster-wide),
        as the watches do: proves the API is reachable with this identity and its RBAC
        (readiness). Raises KubeError otherwise."""
        where = namespace or "all namespaces"
        if namespace is None:
            await self._call(
                f"list SecretSyncs in {where}",
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURALS["SecretSync"],
                limit=1,
                resource_version="0",  # from the apiserver's cache, not etcd
            )
            await self._call(
                f"list Secrets in {where}",
                self._core.list_secret_for_all_namespaces,
                limit=1,
                resource_version="0",
                label_selector=label_selector,
            )
            return
        await self._call(
            f"list SecretSyncs in {where}",
            self._custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS["SecretSync"],
            limit=1,
            resource_version="0",
        )
        await self._call(
            f"list Secrets in {where}",
            self._core.list_namespaced_secret,
            namespace,
            limit=1,
            resource_version="0",
            label_selector=label_selector,
        )

    # --- operator state ----------------------------------------------------------------------

    async def ensure_secret_key(
        self, namespace: str, name: str, key: str, make: Callable[[], bytes]
    ) -> bytes:
        """A key of the operator's own Secret, created with make() the first time."""
        secret = await self.get_secret(namespace, name)
        if secret is not None and key in secret.data:
            return secret.data[key]
        value = make()
        if secret is None:
            try:
                await self.create_secret(
                    namespace=namespace,
                    name=name,
                    type_="Opaque",
                    data={key: value},
                    labels={"app.kubernetes.io/name": "secretsync"},
                    annotations={},
                    owner=None,
                    immutable=False,
                )
            except KubeConflictError:
                # Another replica won the race: use its key.
                return await self.secret_value(namespace, name, key)
            return value
        await self.patch_secret(
            namespace=namespace,
            name=name,
            data={key: value},
            labels=secret.labels,
            annotations=secret.annotations,
            resource_version=secret.resource_version,
        )
        return value
