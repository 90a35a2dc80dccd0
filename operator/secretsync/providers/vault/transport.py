"""A typed, asynchronous face over one hvac client.

hvac is synchronous and untyped: every call here runs in a worker thread, is
reported to the observer once, has its exceptions translated (errors.py) and
its JSON body narrowed to `Json`. Paths are quoted here, so callers pass plain
Vault paths ("secret/data/team-a/db").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import functools
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import hvac.exceptions
import requests

from secretsync.errors import ProviderConfigError, ProviderError
from secretsync.models.remote import CallGate
from secretsync.providers.retryafter import retry_after_seconds
from secretsync.providers.vault import errors

Json = Mapping[str, object]

# Seconds before a Vault call is abandoned (ProviderUnavailableError); well
# under kopf's handler timeouts, well over a healthy server's latency.
REQUEST_TIMEOUT = 15.0
# hvac's blocking calls run on threads of their own, not on the event loop's default
# executor (cpu + 4 threads in all): KV reads run at most 8 at a time per call
# (kv.MAX_CONCURRENCY), so one slow identity or server holds a few of these and the
# others keep their latency. One pool for the process (created on first use), so that
# identities coming and going do not start and stop threads.
THREADS = 64
_pool: list[concurrent.futures.ThreadPoolExecutor] = []


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    if not _pool:
        _pool.append(concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="vault"))
    return _pool[0]


class _Unobserved:
    """The gate of login calls, which the engine guards itself (Runner.session)."""

    async def enter(self, operation: str) -> None:
        """Never waits."""

    def leave(self, operation: str, error: ProviderError | None) -> None:
        """Reports nothing."""


def _vault_error(url: str, response: requests.Response) -> Exception:
    """The hvac exception for an error response, as hvac itself would raise it."""
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    problems = body.get("errors") if isinstance(body, dict) else None
    error: Exception = hvac.exceptions.VaultError.from_status(
        response.status_code,
        None if problems else response.text,
        errors=problems,
        method=response.request.method,
        url=url,
        text=response.text,
        json=body,
    )
    return error


def decode_ca_bundle(ca_bundle: str) -> bytes:
    """spec.caBundle (base64 PEM) as PEM bytes."""
    try:
        pem = base64.b64decode(ca_bundle, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderConfigError(
            "vault: spec.provider.vault.caBundle is not valid base64"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ProviderConfigError(
            "vault: spec.provider.vault.caBundle does not hold a PEM certificate"
        )
    return pem


def _write_ca_file(pem: bytes) -> str:
    # requests verifies only against a file path; mkstemp makes it 0600.
    fd, path = tempfile.mkstemp(prefix="secretsync-vault-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def obj(value: object, field: str) -> Json:
    """`value` as a JSON object; anything else is an unexpected response."""
    if isinstance(value, Mapping):
        return value
    raise ProviderError(f"vault: unexpected response: {field} is not an object")


def field_int(body: Json, field: str, default: int | None = None) -> int:
    """An integer field of a JSON object."""
    value = body.get(field, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ProviderError(f"vault: unexpected response: {field} is not an integer")


class Transport:
    """One hvac client: its token, namespace, TLS trust, and calls to the HTTP API."""

    def __init__(
        self,
        *,
        server: str,
        token: str,
        namespace: str | None,
        ca_pem: bytes | None,
        gate: CallGate | None = None,
    ) -> None:
        self._gate: CallGate = gate or _Unobserved()
        self._ca_file = _write_ca_file(ca_pem) if ca_pem else None
        # token="" rather than None: hvac would otherwise pick up VAULT_TOKEN or
        # ~/.vault-token from the operator's environment.
        self._client: Any = hvac.Client(
            url=server,
            token=token,
            namespace=namespace or None,
            verify=self._ca_file or True,
            timeout=REQUEST_TIMEOUT,
        )

    async def get(
        self, operation: str, path: str, *, params: Mapping[str, str] | None = None
    ) -> Json:
        """GET /v1/<path>."""
        return await self._call(operation, "get", path, action="reading", params=params)

    async def list(self, operation: str, path: str) -> Json:
        """LIST /v1/<path>/ (a folder's keys)."""
        return await self._call(operation, "list", path.rstrip("/") + "/", action="listing")

    async def write(self, operation: str, path: str, body: Mapping[str, object]) -> Json:
        """POST /v1/<path> with a JSON body (issue, renew, revoke)."""
        return await self._call(operation, "post", path, action="writing", body=body)

    async def login(self, path: str, body: Mapping[str, str]) -> Json:
        """POST a login request to /v1/<path>; refusals are ProviderAuthError."""
        return await self._call(
            "login", "post", path, action="logging in at", body=body, login=True
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        action: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, object] | None = None,
        login: bool = False,
    ) -> Json:
        url = "/v1/" + urllib.parse.quote(path)
        send: Callable[..., Any] = getattr(self._client.adapter, method)
        # raise_exception=False: hvac's exceptions drop the response headers, and a 429's
        # Retry-After is what tells the circuit how long to wait.
        kwargs: dict[str, Any] = {"raise_exception": False}
        if params:
            kwargs["params"] = dict(params)
        if body is not None:
            kwargs["json"] = dict(body)
        await self._gate.enter(operation)
        error: ProviderError | None = ProviderError(f"vault: {operation} did not complete")
        try:
            try:
                call = functools.partial(send, url, **kwargs)
                response = await asyncio.get_running_loop().run_in_executor(_threads(), call)
            except Exception as exc:  # noqa: BLE001 - every SDK error is translated below
                error = errors.translate(exc, action=action, path=path, login=login)
            else:
                # hvac's JSON adapter returns a dict for 200 and the Response otherwise.
                if isinstance(response, Mapping):
                    error = None
                    return response
                if response.status_code < 400:
                    error = None
                    return {}
                error = errors.translate(
                    _vault_error(url, response),
                    action=action,
                    path=path,
                    login=login,
                    retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                )
        finally:
            self._gate.leave(operation, error)
        raise error

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session and remove the CA file."""
        await asyncio.to_thread(self._client.adapter.close)
        if self._ca_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ca_file)
            self._ca_file = None
