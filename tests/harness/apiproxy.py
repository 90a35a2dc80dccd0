"""A TLS-terminating proxy in front of kube-apiserver that can silently stall watches.

A watch that stops receiving events without being closed is what a half-dead
connection (a NAT or load balancer that forgot it) looks like to a client: TCP
keepalives still succeed, nothing arrives. To stall only watches, the proxy must see
the requests, so it terminates TLS with the apiserver's own serving certificate (its
SANs are 127.0.0.1 and localhost, so the environment's CA still verifies it) and opens
one upstream TLS connection per client connection: keep-alive and pooling behave as
without the proxy. It reads each request's head on the way (a watch is `?watch=true` or
a `/watch/` path) and otherwise passes bytes through unchanged.

Upstream it authenticates as the environment's admin, unless the client's first request
carries its own `Authorization` (a ServiceAccount token), which then goes through as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import itertools
import json
import re
import ssl
import threading
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import yaml

HEAD_END = b"\r\n\r\n"
CHUNK = 65536
CLOSE_TIMEOUT = 5.0

T = TypeVar("T")


@dataclasses.dataclass(eq=False)
class Connection:
    """One client connection and what the proxy knows of it."""

    number: int
    request: str = ""  # the request line of its current request
    watch: bool = False  # whether that request is a watch
    flowing: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = dataclasses.field(default_factory=list)

    @property
    def stalled(self) -> bool:
        return not self.flowing.is_set()


def is_watch(head: bytes) -> bool:
    """Whether a request head asks for a watch."""
    words = head.split(b"\r\n", 1)[0].split(b" ")
    if len(words) < 3:  # not HTTP/1.x: the apiserver will say so
        return False
    parts = urllib.parse.urlsplit(words[1].decode(errors="replace"))
    flag = urllib.parse.parse_qs(parts.query).get("watch", [""])[0].lower()
    return flag in ("true", "1") or "/watch/" in parts.path


def _body_length(head: bytes) -> int | None:
    """The request body's length; None when it is chunked (not followed further)."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return None
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    return length


class ApiServerProxy:
    """A loopback proxy to kube-apiserver; `kubeconfig` points a client (the operator) at it.

    `stall()` stops forwarding, in both directions and without closing, every connection
    that is carrying a watch at that moment; connections opened later, and connections
    busy with anything else, keep working. `resume()` lets the stalled ones flow again
    (what the apiserver sent meanwhile arrives late) or, with drop=True, aborts them.
    `refuse()` answers chosen requests with an error instead of forwarding them."""

    def __init__(
        self,
        *,
        upstream: str,
        serving_cert: Path,
        serving_key: Path,
        ca_cert: Path,
        admin_cert: Path,
        admin_key: Path,
        client_kubeconfig: Path,
        kubeconfig_dir: Path,
    ) -> None:
        address = urllib.parse.urlsplit(upstream)
        self._upstream = (address.hostname or "127.0.0.1", address.port or 443)
        self._serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._serving.load_cert_chain(serving_cert, serving_key)
        # HTTP/1.1 only: in HTTP/2 a watch is a stream among others on one connection,
        # and stalling it would stall them all.
        self._serving.set_alpn_protocols(["http/1.1"])
        self._as_admin = ssl.create_default_context(cafile=str(ca_cert))
        self._as_admin.load_cert_chain(admin_cert, admin_key)
        self._as_client = ssl.create_default_context(cafile=str(ca_cert))
        for context in (self._as_admin, self._as_client):
            context.set_alpn_protocols(["http/1.1"])
        self._numbers = itertools.count(1)
        self._refusals: list[tuple[re.Pattern[bytes], int]] = []
        self.refused = 0
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="apiproxy")
        self._thread.start()
        self._server = self._call(self._listen())
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{port}"
        self.kubeconfig = _retarget(
            client_kubeconfig, kubeconfig_dir / f"kubeconfig-apiproxy-{port}", self.url
        )

    # --- control, from the test's thread -----------------------------------------------

    def stall(self, *, watches_only: bool = True) -> int:
        """Stall the connections carrying a watch now (all open ones with watches_only=False);
        returns how many."""

        async def stall() -> int:
            chosen = [c for c in self._connections if c.watch or not watches_only]
            for conn in chosen:
                conn.flowing.clear()
            return len(chosen)

        return self._call(stall())

    def resume(self, *, drop: bool = False) -> int:
        """Let stalled connections flow again, or abort them (drop=True); returns how many."""

        async def resume() -> int:
            stalled = [c for c in self._connections if c.stalled]
            for conn in stalled:
                if drop:
                    for writer in conn.writers:
                        writer.transport.abort()
                conn.flowing.set()
            return len(stalled)

        return self._call(resume())

    def refuse(self, request_line: str, *, status: int = 503) -> None:
        """Answer every request whose request line (e.g. `PATCH /apis/.../status HTTP/1.1`)
        matches the regular expression with `status` and a Kubernetes Status body, without
        forwarding it, until `allow()`: an apiserver failing one kind of request."""
        pattern = re.compile(request_line.encode())

        async def add() -> None:
            self._refusals.append((pattern, status))

        self._call(add())

    def allow(self) -> int:
        """Stop refusing; returns how many requests were refused since the last allow()."""

        async def clear() -> int:
            refused, self.refused = self.refused, 0
            self._refusals.clear()
            return refused

        return self._call(clear())

    def connections(self) -> list[tuple[str, bool, bool]]:
        """(request line, is a watch, is stalled) of every open connection."""

        async def listing() -> list[tuple[str, bool, bool]]:
            return [(c.request, c.watch, c.stalled) for c in self._connections]

        return self._call(listing())

    def close(self) -> None:
        """Stop listening, abort every connection and stop the proxy's thread."""

        async def shut() -> None:
            self._server.close()
            for conn in self._connections:
                for writer in conn.writers:
                    writer.transport.abort()
                conn.flowing.set()
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT)

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # --- the proxy, on its own event loop -------------------------------------------------

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._serving, limit=1 << 20
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(next(self._numbers), writers=[writer])
        conn.flowing.set()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._connections.add(conn)
        try:
            await self._relay(conn, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a peer gone or unreachable (the apiserver stopped): the connection ends
        finally:
            self._connections.discard(conn)
            for w in conn.writers:  # flush what was forwarded, then close
                w.close()
                # The peer may be gone already (reset, or TLS torn down): nothing to flush.
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await asyncio.wait_for(w.wait_closed(), CLOSE_TIMEOUT)
                w.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _relay(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await _read_head(reader)
        if not head:
            return
        own_credentials = b"\r\nauthorization:" in head.lower()
        up_reader, up_writer = await asyncio.open_connection(
            *self._upstream,
            ssl=self._as_client if own_credentials else self._as_admin,
            server_hostname="127.0.0.1",
        )
        conn.writers.append(up_writer)
        pumps = [
            asyncio.create_task(self._requests(conn, head, reader, up_writer, writer)),
            asyncio.create_task(self._pipe(conn, up_reader, writer)),
        ]
        try:
            # Either side ending ends the connection (HTTP clients and the apiserver do
            # not half-close, and TLS has no half-close anyway).
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.wait(pumps)

    async def _requests(
        self,
        conn: Connection,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        """Client to apiserver, request by request, noting what each one is."""
        while head:
            line = head.split(b"\r\n", 1)[0]
            conn.request = line.decode(errors="replace")
            conn.watch = is_watch(head)
            refusal = next((st for pattern, st in self._refusals if pattern.search(line)), None)
            if refusal is not None:
                # HTTP/1.1 clients send the next request only after this one's answer, so
                # answering here keeps the connection's order intact.
                length = _body_length(head)
                if length is None:
                    return  # a chunked body: end the connection instead
                if length:
                    await reader.readexactly(length)
                self.refused += 1
                await self._send(conn, client, _status_answer(refusal))
                head = await _read_head(reader)
                continue
            await self._send(conn, writer, head)
            length = _body_length(head)
            if length is None:  # a chunked body: pass the rest through untracked
                await self._pipe(conn, reader, writer)
                return
            while length > 0:
                await conn.flowing.wait()
                data = await reader.read(min(length, CHUNK))
                if not data:
                    return
                length -= len(data)
                await self._send(conn, writer, data)
            await conn.flowing.wait()
            head = await _read_head(reader)

    async def _pipe(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Bytes as they come, except while stalled: then neither read (so the sender's
        window fills as it would behind a dead path) nor write."""
        while True:
            await conn.flowing.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            await self._send(conn, writer, data)

    async def _send(self, conn: Connection, writer: asyncio.StreamWriter, data: bytes) -> None:
        await conn.flowing.wait()  # bytes read just before a stall are held too
        writer.write(data)
        await writer.drain()


def _status_answer(status: int) -> bytes:
    """An error answer as the apiserver words it (a metav1.Status)."""
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "injected by the test's apiserver proxy",
            "reason": "ServiceUnavailable" if status == 503 else "InternalError",
            "code": status,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """The next request head, or b"" at the end of the connection."""
    try:
        return await reader.readuntil(HEAD_END)
    except asyncio.IncompleteReadError:
        return b""


def _retarget(source: Path, target: Path, server: str) -> Path:
    """A copy of a kubeconfig with every cluster's server replaced."""
    config = yaml.safe_load(source.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target
