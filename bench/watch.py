"""Watches on SecretSyncs and managed Secrets: what the cluster holds, as it changes.

A second, independent count of the operator's writes (every write that changes an
object bumps its resourceVersion and reaches the watch as ADDED or MODIFIED), and the
clock of the scenarios: when every SecretSync became Ready, when a Secret first held a
rotated value. Events are read as raw JSON lines (no client models: at 10,000 objects
their deserialisation would cost the operator CPU on a two-core machine).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

log = logging.getLogger("bench.watch")

Key = tuple[str, str]  # (namespace, name)
MANAGED = "app.kubernetes.io/managed-by=secretsync"


@dataclasses.dataclass(slots=True)
class SyncState:
    generation: int
    ready: tuple[str, str, int] | None  # (status, reason, observedGeneration)
    resource_version: str

    @property
    def synced(self) -> bool:
        return (
            self.ready is not None
            and self.ready[:2] == ("True", "Synced")
            and (self.ready[2] == self.generation)
        )


@dataclasses.dataclass(slots=True)
class SecretState:
    data: dict[str, bytes]
    resource_version: str
    changed_at: float  # when the data last changed, as seen here


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    at: float
    kind: str  # "SecretSync" or "Secret"
    type: str  # ADDED, MODIFIED, DELETED
    key: Key


Listener = Callable[[str, Key], None]


def _sync_state(obj: dict[str, Any]) -> SyncState:
    ready = None
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            ready = (
                str(cond.get("status")),
                str(cond.get("reason")),
                int(cond.get("observedGeneration") or 0),
            )
    meta = obj["metadata"]
    return SyncState(int(meta.get("generation") or 0), ready, meta["resourceVersion"])


def _secret_data(obj: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


class ClusterWatch:
    """Mirrors SecretSyncs and managed Secrets of namespaces with a prefix."""

    def __init__(self, api: Any, *, namespace_prefix: str) -> None:
        self._api = api
        self._prefix = namespace_prefix
        self.syncs: dict[Key, SyncState] = {}
        self.secrets: dict[Key, SecretState] = {}
        self.changes: list[Change] = []
        self.relists = 0
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._loop,
                args=("SecretSync", "/apis/secretsync.io/v1alpha1/secretsyncs", None),
                daemon=True,
                name="watch-syncs",
            ),
            threading.Thread(
                target=self._loop,
                args=("Secret", "/api/v1/secrets", MANAGED),
                daemon=True,
                name="watch-secrets",
            ),
        ]
        self._ready = threading.Barrier(len(self._threads) + 1)
        for thread in self._threads:
            thread.start()
        self._ready.wait(timeout=120)

    # --- what the scenarios ask ----------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        with self._cond:
            self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        with self._cond:
            self._listeners.remove(listener)

    def wait(self, probe: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Block until probe() (called under the watch's lock after each event) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not probe():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(min(left, 1.0))

    def lock(self) -> threading.Condition:
        return self._cond

    def count(self, start: float, end: float, prefix: str = "") -> dict[str, int]:
        """ADDED/MODIFIED/DELETED events per kind between two times (in namespaces that
        start with the prefix)."""
        with self._cond:
            found = collections.Counter(
                f"{c.type} {c.kind}"
                for c in self.changes
                if start <= c.at < end and c.key[0].startswith(prefix)
            )
        return dict(sorted(found.items()))

    def stop(self) -> None:
        self._stop.set()

    # --- the watch loop ----------------------------------------------------------------

    def _request(self, path: str, query: list[tuple[str, str]], *, stream: bool) -> Any:
        method, url, headers, _, _ = self._api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        timeout = urllib3.Timeout(connect=10, read=None if stream else 120)
        resp = self._api.call_api(method, url, headers, _request_timeout=timeout)
        if not 200 <= resp.status < 300:
            resp.read()
            raise RuntimeError(f"GET {path}: HTTP {resp.status}")
        return resp.response

    def _list(self, kind: str, path: str, selector: str | None) -> str:
        seen: set[Key] = set()
        token = ""
        while True:
            query = [("limit", "500")]
            if selector:
                query.append(("labelSelector", selector))
            if token:
                query.append(("continue", token))
            body = json.loads(self._request(path, query, stream=False).data)
            for obj in body.get("items") or ():
                meta = obj["metadata"]
                key = (meta.get("namespace", ""), meta["name"])
                if key[0].startswith(self._prefix):
                    seen.add(key)
                    self._apply(kind, "ADDED", obj, time.time(), relist=True)
            token = (body.get("metadata") or {}).get("continue") or ""
            if not token:
                rv: str = body["metadata"]["resourceVersion"]
                break
        with self._cond:
            table: dict[Key, Any] = self.syncs if kind == "SecretSync" else self.secrets
            for key in [k for k in table if k not in seen]:
                del table[key]
        return rv

    def _lines(self, resp: Any) -> Iterator[bytes]:
        buffer = b""
        for chunk in resp.stream(65536, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line

    def _loop(self, kind: str, path: str, selector: str | None) -> None:
        rv = self._list(kind, path, selector)
        self._ready.wait(timeout=120)
        while not self._stop.is_set():
            query = [
                ("watch", "true"),
                ("resourceVersion", rv),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", "300"),
            ]
            if selector:
                query.append(("labelSelector", selector))
            try:
                resp = self._request(path, query, stream=True)
                for line in self._lines(resp):
                    now = time.time()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise _GoneError(str(obj.get("message")))
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if event.get("type") == "BOOKMARK":
                        continue
                    self._apply(kind, str(event["type"]), obj, now, relist=False)
                    if self._stop.is_set():
                        return
            except _GoneError:
                self.relists += 1
                rv = self._list(kind, path, selector)
            except Exception as exc:  # noqa: BLE001 - a dropped watch is re-opened, never fatal
                if self._stop.is_set():
                    return
                log.warning("watch of %s dropped (%s); re-opening", kind, type(exc).__name__)
                time.sleep(0.5)

    def _apply(
        self, kind: str, type_: str, obj: dict[str, Any], now: float, *, relist: bool
    ) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if not key[0].startswith(self._prefix):
            return
        with self._cond:
            if kind == "SecretSync":
                if type_ == "DELETED":
                    self.syncs.pop(key, None)
                else:
                    old = self.syncs.get(key)
                    new = _sync_state(obj)
                    if relist and old is not None and old.resource_version == new.resource_version:
                        return
                    self.syncs[key] = new
            elif type_ == "DELETED":
                self.secrets.pop(key, None)
            else:
                previous = self.secrets.get(key)
                if relist and previous and previous.resource_version == meta["resourceVersion"]:
                    return
                data = _secret_data(obj)
                since = now if previous is None or previous.data != data else previous.changed_at
                self.secrets[key] = SecretState(data, meta["resourceVersion"], since)
            if not relist:
                self.changes.append(Change(now, kind, type_, key))
            for listener in list(self._listeners):
                listener(kind, key)
            self._cond.notify_all()


class _GoneError(Exception):
    pass
