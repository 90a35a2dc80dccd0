"""The rotation webhook: `POST /v1/notify` tells the operator that remote keys changed.

Anything that knows a secret rotated (a rotation Lambda, a CI pipeline, a Vault audit
pipeline) signals it here; every SecretSync of the named store that reads one of the
keys syncs at once instead of waiting for its refresh. The contract (DESIGN.md)::

    POST /v1/notify
    X-Secretsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
    {"store": {"kind": "SecretStore", "namespace": "team-a", "name": "team-a-aws"},
     "keys": ["team-a/db"]}

The HMAC key is the `key` entry of the Secret named by `--webhook-secret`. Several
`v1=` signatures may be sent (one per key while the key rotates); one valid one is
enough. A request is checked in order of cost, and changes nothing unless it passes
every check:

====  ==========================================================  ==================
code  when                                                        discard reason
====  ==========================================================  ==================
503   this replica stands by (peering); retry after 1 s           standing-by
429   over the rate (token bucket, 20/s, burst 40)                rate-limited
413   body over 64 KiB (Content-Length, or while reading)         too-large
401   no signature header, or a malformed one                     bad-signature
503   the key cannot be read (Secret missing, key too short)      key-unavailable
401   no signature matches the key (read again once if not)       bad-signature
401   signature valid but timestamp more than 300 s off           stale
400   not JSON, or not the schema above                           malformed
404   the operator does not know the store                        unknown-store
202   accepted: ``{"matched": N}`` SecretSyncs made due           (unmatched if 0)
====  ==========================================================  ==================

Decisions (DESIGN.md is silent on them):

- The signature is checked before the timestamp, so `stale` counts only genuine replays
  of signed requests, and before the body is parsed, so an unauthenticated caller learns
  nothing about the schema. Comparisons are constant-time (`hmac.compare_digest`).
- Within the five minutes a signed request may be replayed; that is harmless (a
  notification only makes syncs due, which is idempotent) and bounded by the rate limit.
- The key is read through a callable, cached 30 s, and read again (at most once a
  second) when a signature does not match, so a rotated Secret takes effect at once.
  Keys shorter than 16 bytes are refused: they would be guessable.
- Error bodies are ``{"error": "..."}`` written by us; they never quote the request.
  Logs name the store and the number of keys, never the body, a signature or the key.
- Unknown fields are ignored (forward compatibility); a ClusterSecretStore takes no
  namespace (absent, null or "").

This module does not import the engine or the Kubernetes layer: the handlers pass
`notify` (the engine's) and `load_key` (a Secret read) as callables.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from secretsync.errors import SecretSyncError
from secretsync.metrics import Metrics

PATH = "/v1/notify"
HEADER = "X-Secretsync-Signature"
SOURCE = "webhook"
KINDS = ("SecretStore", "ClusterSecretStore")
MIN_KEY_BYTES = 16
MAX_SIGNATURES = 8  # bounds the HMAC work one request can ask for
MAX_KEYS = 100
MAX_KEY_LENGTH = 2048
MAX_NAME_LENGTH = 253  # a Kubernetes object name (DNS subdomain)
MAX_NAMESPACE_LENGTH = 63  # a namespace name (DNS label)

_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

logger = logging.getLogger("secretsync.webhook")


class Notify(Protocol):
    """The engine's notify: make SecretSyncs of the store that read the keys due now;
    the number made due, or None if the store is unknown. May be sync or async."""

    def __call__(
        self, *, kind: str, namespace: str, name: str, keys: Sequence[str], source: str
    ) -> int | Awaitable[int | None] | None: ...


LoadKey = Callable[[], Awaitable[bytes]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Limits:
    """What one webhook accepts; the defaults are the documented ones."""

    max_body: int = 64 * 1024
    rate: float = 20.0  # requests per second, sustained
    burst: int = 40
    max_skew: float = 300.0
    key_ttl: float = 30.0  # seconds a read key is reused
    key_reload_interval: float = 1.0  # at most one extra read a second on a mismatch


class RefusedError(Exception):
    """A request the webhook refuses: the HTTP status, the metric's discard reason and a
    message for the caller (written here, never quoting the request)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _mismatch() -> RefusedError:
    return RefusedError(401, "bad-signature", "no signature matches the webhook key")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Notification:
    """A parsed, valid request body."""

    kind: str
    namespace: str  # "" for a ClusterSecretStore
    name: str
    keys: tuple[str, ...]

    @property
    def store(self) -> str:
        """The store as people write it, for logs."""
        if self.kind == "ClusterSecretStore":
            return f"{self.kind} {self.name}"
        return f"{self.kind} {self.namespace}/{self.name}"


# --- signatures (pure) ---------------------------------------------------------------------


def signature(key: bytes, body: bytes, *, timestamp: str) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>"."""
    return hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(key: bytes, body: bytes, *, timestamp: int) -> str:
    """A complete header value for the body, as a sender computes it."""
    return f"t={timestamp},v1={signature(key, body, timestamp=str(timestamp))}"


def parse_header(header: str | None) -> tuple[str, list[str]]:
    """The timestamp (as sent, since it is signed as sent) and the v1 signatures of a
    header; RefusedError(401) if it is missing or malformed. Unknown schemes are skipped,
    so senders may add newer ones next to v1."""
    if not header:
        raise RefusedError(401, "bad-signature", f"missing {HEADER} header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if not sep:
            raise RefusedError(401, "bad-signature", f"malformed {HEADER} header")
        if scheme == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise RefusedError(
                    401, "bad-signature", f"{HEADER}: t must be one integer of unix seconds"
                )
            timestamp = value
        elif scheme == "v1":
            if not _HEX_SIGNATURE.fullmatch(value):
                raise RefusedError(
                    401, "bad-signature", f"{HEADER}: v1 must be 64 hex digits (HMAC-SHA256)"
                )
            signatures.append(value.lower())
    if timestamp is None:
        raise RefusedError(401, "bad-signature", f"{HEADER} has no t=<unix seconds>")
    if not signatures:
        raise RefusedError(401, "bad-signature", f"{HEADER} has no v1=<signature>")
    if len(signatures) > MAX_SIGNATURES:
        raise RefusedError(
            401, "bad-signature", f"{HEADER} has more than {MAX_SIGNATURES} v1 signatures"
        )
    return timestamp, signatures


def matches(key: bytes, body: bytes, *, timestamp: str, signatures: Sequence[str]) -> bool:
    """Whether one of the signatures is the key's; every one is compared, in constant time,
    whichever matched."""
    expected = signature(key, body, timestamp=timestamp).encode()
    found = False
    for candidate in signatures:
        found |= hmac.compare_digest(expected, candidate.encode())
    return found


def check_skew(timestamp: str, *, now: float, max_skew: float = 300.0) -> None:
    """RefusedError(401, stale) if the timestamp is more than max_skew seconds from now,
    in either direction."""
    if abs(now - int(timestamp)) > max_skew:
        raise RefusedError(
            401,
            "stale",
            f"the signature's timestamp is more than {max_skew:.0f} s away from the "
            "operator's clock; sign each request when sending it",
        )


def verify(
    header: str | None, body: bytes, key: bytes, *, now: float, max_skew: float = 300.0
) -> None:
    """Accept a request signed with the key within max_skew seconds of now, else raise
    RefusedError(401): the whole check for one key, as the webhook makes it."""
    timestamp, signatures = parse_header(header)
    if not matches(key, body, timestamp=timestamp, signatures=signatures):
        raise _mismatch()
    check_skew(timestamp, now=now, max_skew=max_skew)


# --- the body (pure) -----------------------------------------------------------------------


def _malformed(message: str) -> RefusedError:
    return RefusedError(400, "malformed", message)


def _name(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise _malformed(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise _malformed(f"{field} must be at most {limit} characters")
    return value


def parse_body(body: bytes) -> Notification:
    """The notification in a body, or RefusedError(400) saying which field is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise _malformed("the body is not a JSON document") from None
    if not isinstance(doc, dict):
        raise _malformed("the body must be a JSON object with `store` and `keys`")
    store = doc.get("store")
    if not isinstance(store, dict):
        raise _malformed("store must be an object with kind, namespace and name")
    kind = store.get("kind")
    if kind not in KINDS:
        raise _malformed("store.kind must be SecretStore or ClusterSecretStore")
    name = _name(store.get("name"), "store.name", MAX_NAME_LENGTH)
    namespace = store.get("namespace")
    if kind == "SecretStore":
        namespace = _name(namespace, "store.namespace", MAX_NAMESPACE_LENGTH)
    elif namespace not in (None, ""):
        raise _malformed("store.namespace must be absent for a ClusterSecretStore")
    keys = doc.get("keys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise _malformed(f"keys must be a list of 1 to {MAX_KEYS} remote keys")
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise _malformed(f"keys[{i}] must be a string of 1 to {MAX_KEY_LENGTH} characters")
    return Notification(kind=kind, namespace=namespace or "", name=name, keys=tuple(keys))


# --- rate and key (small state) ------------------------------------------------------------


class TokenBucket:
    """`rate` requests a second on average, up to `burst` at once."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until the next token."""
        return max(1, int((1.0 - self._tokens) / self._rate + 0.999))


class KeyUnavailableError(SecretSyncError):
    """The webhook key cannot be read or is unusable."""


class KeyCache:
    """The HMAC key, read through `load`, reused for `ttl` seconds; `reload` reads it again
    (at most once per `reload_interval`) when a signature did not match, so a rotated key
    takes effect without waiting. A failed read is remembered for `reload_interval` too,
    so a missing Secret costs one API read a second, not one per request. One read at a
    time, shared by concurrent requests."""

    def __init__(
        self,
        load: LoadKey,
        *,
        ttl: float,
        reload_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._reload_interval = reload_interval
        self._clock = clock
        self._key: bytes | None = None
        self._error: str | None = None  # why the last read failed
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> bytes:
        """The key; KeyUnavailableError if it cannot be read."""
        return await self._read(max_age=self._ttl)

    async def reload(self) -> bytes | None:
        """A freshly read key, or None if it was read less than reload_interval ago."""
        if self._clock() - self._read_at < self._reload_interval:
            return None
        return await self._read(max_age=self._reload_interval)

    async def _read(self, *, max_age: float) -> bytes:
        async with self._lock:
            # Another request may have read it while this one waited for the lock.
            age = self._clock() - self._read_at
            if self._key is not None and age < max_age:
                return self._key
            if self._error is not None and age < self._reload_interval:
                raise KeyUnavailableError(self._error)
            self._key, self._error = None, None
            self._read_at = self._clock()
            try:
                key = await self._load()
            except SecretSyncError as exc:
                self._error = str(exc)  # our errors name objects, never values
                raise KeyUnavailableError(self._error) from exc
            if len(key) < MIN_KEY_BYTES:
                self._error = (
                    f"the webhook key is shorter than {MIN_KEY_BYTES} bytes; "
                    "generate one with `openssl rand -hex 32`"
                )
                raise KeyUnavailableError(self._error)
            self._key = key
            return key


# --- the HTTP side -------------------------------------------------------------------------


class Webhook:
    """The request handler and its state (rate, key cache); see the module docstring."""

    def __init__(
        self,
        *,
        load_key: LoadKey,
        notify: Notify,
        metrics: Metrics,
        active: Callable[[], bool] = lambda: True,
        limits: Limits | None = None,
        key_source: str = "the webhook Secret",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notify = notify
        self._active = active
        self._metrics = metrics
        self._limits = limits = limits or Limits()
        self._key_source = key_source
        self._clock = clock
        self._bucket = TokenBucket(rate=limits.rate, burst=limits.burst, clock=monotonic)
        self.keys = KeyCache(
            load_key,
            ttl=limits.key_ttl,
            reload_interval=limits.key_reload_interval,
            clock=monotonic,
        )

    def application(self) -> web.Application:
        """An aiohttp application serving POST /v1/notify."""
        app = web.Application(client_max_size=self._limits.max_body)
        app.router.add_post(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        """One request: 202 with the number of SecretSyncs made due, or a refusal."""
        self._metrics.events_received.labels(source=SOURCE).inc()
        try:
            notification = await self._accept(request)
            matched = await self._call_notify(notification)
        except RefusedError as refused:
            return self._refuse(request, refused)
        if matched:
            self._metrics.events_matched.labels(source=SOURCE).inc()
        else:
            self._metrics.events_discarded.labels(source=SOURCE, reason="unmatched").inc()
        logger.info(
            "webhook: %s reports %d changed remote key(s); %d SecretSync(s) due now",
            notification.store,
            len(notification.keys),
            matched,
        )
        return web.json_response({"matched": matched}, status=202)

    async def _accept(self, request: web.Request) -> Notification:
        """The request's notification if it passes every check, cheapest first."""
        if not self._active():
            raise RefusedError(
                503, "standing-by", "this replica stands by; the active replica answers, retry"
            )
        if not self._bucket.take():
            raise RefusedError(429, "rate-limited", "too many requests; retry later")
        limit = self._limits.max_body
        too_large = RefusedError(413, "too-large", f"the body is over {limit} bytes")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked bodies, counted while read
            raise too_large from None
        timestamp, signatures = parse_header(request.headers.get(HEADER))
        key = await self._key()
        if not matches(key, body, timestamp=timestamp, signatures=signatures):
            # The Secret may have rotated since it was read: read it once more.
            try:
                fresh = await self.keys.reload()
            except KeyUnavailableError:
                fresh = None
            if fresh is None or not matches(
                fresh, body, timestamp=timestamp, signatures=signatures
            ):
                raise _mismatch()
        check_skew(timestamp, now=self._clock(), max_skew=self._limits.max_skew)
        return parse_body(body)

    async def _key(self) -> bytes:
        try:
            return await self.keys.get()
        except KeyUnavailableError as exc:
            logger.error("webhook: cannot use the key in %s: %s", self._key_source, exc)
            raise RefusedError(
                503, "key-unavailable", "the webhook key is not available; see the operator log"
            ) from None

    async def _call_notify(self, notification: Notification) -> int:
        result = self._notify(
            kind=notification.kind,
            namespace=notification.namespace,
            name=notification.name,
            keys=notification.keys,
            source=SOURCE,
        )
        matched = await result if inspect.isawaitable(result) else result
        if matched is None:
            raise RefusedError(
                404,
                "unknown-store",
                "the operator knows no store of that kind, namespace and name (is it in "
                "a namespace this operator watches?)",
            )
        return int(matched)

    def _refuse(self, request: web.Request, refused: RefusedError) -> web.Response:
        self._metrics.events_discarded.labels(source=SOURCE, reason=refused.reason).inc()
        # Over the rate, logging each one would be the flood: debug only.
        level = logging.DEBUG if refused.status == 429 else logging.INFO
        logger.log(
            level,
            "webhook: refused a request from %s with %d (%s)",
            request.remote,
            refused.status,
            refused.reason,
        )
        headers = {}
        if refused.status == 429:
            headers["Retry-After"] = str(self._bucket.retry_after())
        elif refused.reason == "standing-by":
            headers["Retry-After"] = "1"
        return web.json_response({"error": refused.message}, status=refused.status, headers=headers)


async def start(
    *,
    port: int,
    load_key: LoadKey,
    notify: Notify,
    metrics: Metrics,
    active: Callable[[], bool] = lambda: True,
    host: str = "0.0.0.0",  # noqa: S104 - callers outside the Pod must reach it
    key_source: str = "the webhook Secret",
    limits: Limits | None = None,
) -> web.AppRunner:
    """Serve the webhook on host:port until `stop`. Raises OSError if the port is taken.
    The key is read once now so that a missing Secret shows in the log at start; the
    webhook still starts (the Secret may come later) and answers 503 until it exists."""
    hook = Webhook(
        load_key=load_key,
        notify=notify,
        metrics=metrics,
        active=active,
        limits=limits,
        key_source=key_source,
    )
    try:
        await hook.keys.get()
    except KeyUnavailableError as exc:
        logger.warning("webhook: cannot use the key in %s yet: %s", key_source, exc)
    # No access log: our own lines say what happened, without a line per request.
    runner = web.AppRunner(hook.application(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    logger.info("webhook: listening on %s:%d%s", host, port, PATH)
    return runner


async def stop(runner: web.AppRunner) -> None:
    """Stop serving and close open connections."""
    await runner.cleanup()
