"""A recording, fault-injecting HTTP proxy in front of moto (AWS) or OpenBao (Vault).

It forwards every request and records it (`Call`): the AWS action, the access key id
of its SigV4 signature, the web identity token of an STS login, the Vault path and a
hash of the Vault token (never the token), the time, and the fault it got if any. Tests
switch faults on and off while it runs, from any thread::

    proxy = FaultProxy(env.aws_endpoint)
    with proxy.inject(Throttle(), action="BatchGetSecretValue", times=3):
        ...                                       # the next 3 such calls are throttled
    proxy.inject(Reset(), identity=access_key)    # every call of one identity, until cleared
    proxy.inject(Delay(20), vault_path="auth/")   # slow Vault logins; other calls unaffected
    proxy.clear()                                 # no faults; delays and stalls end now

Faults answer in the shape of the request's protocol (see errorshapes.py), so one
`Throttle()` is a ThrottlingException to Secrets Manager and SSM, RequestThrottled to SQS,
a `Throttling` XML error to STS and a 429 to Vault. The newest rule that matches a request
decides its fault.

Every request gets a connection of its own (HTTP/1.0, as http.server speaks), so a reset
or stall never lands on a pooled connection another request would reuse. The proxy can
also be taken down and brought back on the same port (`stop`, `start`), to simulate an
outage without losing the upstream's state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Collection
from types import TracebackType
from typing import Any

from harness import errorshapes, faultkinds
from harness.faultkinds import (
    AwsError,
    Delay,
    Fault,
    Reset,
    ServerError,
    Stall,
    Throttle,
    VaultError,
)

__all__ = [
    "AwsError",
    "Call",
    "Delay",
    "Fault",
    "FaultProxy",
    "Reset",
    "Rule",
    "ServerError",
    "Stall",
    "Throttle",
    "VaultError",
]

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


# --- what reached the upstream ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Call:
    """One request the proxy received (and forwarded, unless `fault` says otherwise)."""

    action: str  # the AWS action; "" for a Vault request
    access_key: str | None
    web_identity_token: str | None  # of STS AssumeRoleWithWebIdentity only
    body: bytes = dataclasses.field(repr=False)
    at: float = dataclasses.field(default_factory=time.monotonic)
    method: str = "POST"
    path: str = "/"
    kind: str = errorshapes.AWS_QUERY  # errorshapes.AWS_JSON, AWS_QUERY or VAULT
    token_hash: str | None = None  # of X-Vault-Token: tells identities apart, reveals none
    fault: str | None = None  # the injected fault's class name; None when forwarded
    wall: float = dataclasses.field(default_factory=time.time)
    service: str = ""  # a JSON protocol's target prefix: secretsmanager, AmazonSSM, AmazonSQS

    @property
    def identity(self) -> str | None:
        """Who made the call: the AWS access key id or the Vault token's hash."""
        return self.access_key or self.token_hash

    @property
    def vault_path(self) -> str:
        """The Vault API path without /v1/ and query ("secret/data/team-a/db")."""
        return urllib.parse.urlsplit(self.path).path.removeprefix("/v1/")


def token_hash(token: str) -> str:
    """A short stable digest of a Vault token, for telling identities apart."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _parse(method: str, path: str, headers: Any, body: bytes) -> Call:
    auth = headers.get("Authorization") or ""
    match = _CREDENTIAL.search(auth)
    access_key = match.group(1) if match else None
    token = headers.get("X-Vault-Token")
    hashed = token_hash(token) if token else None
    target = headers.get("X-Amz-Target") or ""
    service = target.split(".", 1)[0] if "." in target else ""
    if target:  # JSON protocols: secretsmanager.GetSecretValue, AmazonSSM.GetParameters
        action, kind, web_token = target.split(".", 1)[-1], errorshapes.AWS_JSON, None
    elif path.startswith("/v1/") and not access_key:
        action, kind, web_token = "", errorshapes.VAULT, None
    else:  # query protocol: Action=AssumeRoleWithWebIdentity&...
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        action, kind = form.get("Action", ["?"])[0], errorshapes.AWS_QUERY
        web_token = form.get("WebIdentityToken", [None])[0]
    return Call(
        action,
        access_key,
        web_token,
        body,
        method=method,
        path=path,
        kind=kind,
        token_hash=hashed,
        service=service,
    )


# --- which requests get which fault ---------------------------------------------------


@dataclasses.dataclass(eq=False, kw_only=True)
class Rule:
    """One injected fault and the requests it applies to; a context manager that clears it."""

    fault: Fault
    actions: frozenset[str] | None = None
    vault_path: str | None = None
    identity: str | None = None
    where: Callable[[Call], bool] | None = None
    remaining: int | None = None  # None: until cleared
    probability: float = 1.0
    hits: int = 0
    _owner: FaultProxy | None = dataclasses.field(default=None, repr=False)

    def matches(self, call: Call) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.actions is not None and call.action not in self.actions:
            return False
        if self.vault_path is not None and not (
            call.kind == errorshapes.VAULT and call.vault_path.startswith(self.vault_path)
        ):
            return False
        if self.identity is not None and call.identity != self.identity:
            return False
        return self.where is None or self.where(call)

    def clear(self) -> None:
        """Stop injecting this fault (requests waiting in it are not released)."""
        if self._owner is not None:
            self._owner.remove(self)

    def __enter__(self) -> Rule:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.clear()


# --- the proxy ---------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a timed-out SDK call, an operator stopping) or an upstream
        # that is down: the client sees its connection close, which is the behaviour
        # wanted; a traceback on stderr would only be noise. Anything else is a bug here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class FaultProxy:
    """A loopback HTTP proxy that records, forwards and, when told, fails requests."""

    def __init__(
        self,
        upstream: str,
        port: int = 0,
        *,
        seed: int | None = None,
        upstream_timeout: float = 30.0,  # above SQS's longest long poll (20 s)
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.upstream_timeout = upstream_timeout
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not secrets
        self._released = threading.Condition()
        self._generation = 0
        self._port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again, on the same port after stop())."""
        server = _Server(("127.0.0.1", self._port), _handler_for(self))
        self._port = server.server_address[1]
        self._server = server
        # A short poll interval keeps stop() (which waits for the loop to notice) quick.
        threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True, name="faultproxy"
        ).start()

    def stop(self) -> None:
        """Take the endpoint down: connections are refused until start(). Requests held
        by a Delay or Stall are released."""
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- faults --------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        action: str | Collection[str] | None = None,
        vault_path: str | None = None,
        identity: str | None = None,
        where: Callable[[Call], bool] | None = None,
        times: int | None = None,
        probability: float = 1.0,
    ) -> Rule:
        """Fail the requests that match every given condition: an AWS action (or several),
        a Vault path prefix ("auth/kubernetes/login", "secret/data/team-a/"), an identity
        (access key id or Vault token hash, see Call.identity), any predicate; for the next
        `times` matching requests or until cleared; each with `probability`."""
        names = [action] if isinstance(action, str) else action
        actions = None if names is None else frozenset(names)
        rule = Rule(
            fault=fault,
            actions=actions,
            vault_path=vault_path,
            identity=identity,
            where=where,
            remaining=times,
            probability=probability,
            _owner=self,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """No more faults, and release every request held by a Delay or Stall."""
        with self._lock:
            self._rules.clear()
        self.release()

    def release(self) -> None:
        """End every current Delay (the request goes on) and Stall (the connection closes)."""
        with self._released:
            self._generation += 1
            self._released.notify_all()

    def _wait(self, seconds: float) -> None:
        with self._released:
            generation = self._generation
            self._released.wait_for(lambda: self._generation != generation, timeout=seconds)

    def _admit(self, call: Call) -> Fault | None:
        """Record the call with the fault it gets (the newest matching rule's), if any."""
        with self._lock:
            fault = None
            for rule in reversed(self._rules):
                if rule.matches(call) and (
                    rule.probability >= 1.0 or self._random.random() < rule.probability
                ):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    fault = rule.fault
                    call = dataclasses.replace(call, fault=type(fault).__name__)
                    break
            self.calls.append(call)
        return fault

    # --- what was recorded ------------------------------------------------------------

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def actions(self) -> list[str]:
        with self._lock:
            return [c.action for c in self.calls]

    def select(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        identity: str | None = None,
        action: str | None = None,
        faulted: bool | None = None,
    ) -> list[Call]:
        """The calls received in [since, until) (time.monotonic(), like Call.at) that match."""
        return [
            c
            for c in self.snapshot()
            if (since is None or c.at >= since)
            and (until is None or c.at < until)
            and (identity is None or c.identity == identity)
            and (action is None or c.action == action)
            and (faulted is None or (c.fault is not None) == faulted)
        ]

    def per_identity(
        self, *, since: float | None = None, until: float | None = None, action: str | None = None
    ) -> Counter[str | None]:
        """How many calls each identity made in the window."""
        return Counter(c.identity for c in self.select(since=since, until=until, action=action))

    def roles_by_access_key(self) -> dict[str, str]:
        """moto's record of the credentials it issued: access key id -> role ARN."""
        base = f"{self.upstream.scheme}://{self.upstream.netloc}"
        with urllib.request.urlopen(f"{base}/moto-api/data.json", timeout=10) as resp:  # noqa: S310
            data = json.load(resp)
        return {r["access_key_id"]: r["role_arn"] for r in data["sts"]["AssumedRole"]}

    # --- the upstream ------------------------------------------------------------------

    def exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request to the upstream: status, headers, body."""
        conn = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1",
            self.upstream.port,
            timeout=self.upstream_timeout,
        )
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


# Hop-by-hop and length headers: the proxy sets its own.
_DROPPED = frozenset({"transfer-encoding", "connection", "content-length", "keep-alive"})


def _handler_for(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._handle()

        do_GET = do_PUT = do_DELETE = do_LIST = do_PATCH = do_HEAD = do_POST  # noqa: N815 - http.server's naming

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            call = _parse(self.command, self.path, self.headers, body)
            fault = proxy._admit(call)
            if isinstance(fault, Delay):
                proxy._wait(fault.seconds)
            elif isinstance(fault, Reset):
                if fault.after_upstream:
                    self._exchange(body)
                self._reset()
                return
            elif isinstance(fault, Stall):
                self._stall(fault, *self._exchange(body))
                return
            elif fault is not None:
                canned = faultkinds.answer(
                    fault,
                    kind=call.kind,
                    service=call.service,
                    vault_path=call.vault_path,
                    content_type=self.headers.get("Content-Type") or "",
                )
                if canned is not None:
                    self._send(canned.status, list(canned.headers), canned.body)
                    return
            self._send(*self._exchange(body))

        def _exchange(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            return proxy.exchange(self.command, self.path, headers, body)

        def _send_head(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in _DROPPED:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self._send_head(status, headers, len(body))
            if self.command != "HEAD":
                self.wfile.write(body)

        def _reset(self) -> None:
            # Linger on with a zero timeout: close() sends RST instead of FIN, so the
            # client's read fails with ECONNRESET rather than seeing an orderly end.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            # Close the descriptor now: socket.close() would wait for rfile and wfile,
            # which http.server still flushes after this handler returns.
            os.close(self.connection.detach())

        def _stall(
            self, fault: Stall, status: int, headers: list[tuple[str, str]], body: bytes
        ) -> None:
            if body:
                sent = len(body) // 2 if fault.body_bytes is None else fault.body_bytes
                self._send_head(status, headers, len(body))
                self.wfile.write(body[: min(sent, len(body) - 1)])
                self.wfile.flush()
            proxy._wait(fault.timeout)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
