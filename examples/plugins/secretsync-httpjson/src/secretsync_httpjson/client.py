"""The SecretsClient of one httpjson session, and the HTTP transport under it.

Every request passes through the engine's CallGate (which budgets, counts and, while the
identity's circuit is open, refuses it). Errors are secretsync's own; their messages name
the operation, the key and the HTTP status, never a response body, which could quote a
value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue

BATCH = 100  # refs per /v1/read or /v1/versions call: the service's limit


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(float(headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _status_error(operation: str, status: int, headers: Mapping[str, str]) -> ProviderError:
    """The error for a refused call as a whole (not for one of its refs)."""
    where = f"httpjson: {operation} answered HTTP {status}"
    if status == 401:
        return ProviderAuthError(f"{where}: the service refused the ServiceAccount token")
    if status == 403:
        return AccessDeniedError(f"{where}: the identity may not call it")
    if status == 429 or status >= 500:
        return ProviderUnavailableError(where, retry_after=_retry_after(headers))
    return ProviderError(where)


class Transport:
    """One aiohttp session with the bearer token, made on first use inside the loop."""

    def __init__(
        self,
        url: str,
        token: str,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        *,
        gate: CallGate | None,
    ) -> None:
        self._url = url
        self._token = token
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._gate = gate
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True),
            )
        return self._http

    async def call(self, operation: str, method: str, path: str, body: object = None) -> Any:
        """The JSON answer of one request; a ProviderError when the call as a whole failed."""
        if self._gate is not None:
            await self._gate.enter(operation)
        # Reported if nothing else is: the call was cancelled on the way.
        error: ProviderError | None = ProviderUnavailableError(
            f"httpjson: {operation} did not complete"
        )
        try:
            try:
                async with self._session().request(method, self._url + path, json=body) as response:
                    if response.status != 200:
                        error = _status_error(operation, response.status, response.headers)
                    else:
                        answer = await response.json()
                        error = None
                        return answer
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                error = ProviderUnavailableError(
                    f"httpjson: {operation} failed: {type(exc).__name__}"
                )
        finally:
            if self._gate is not None:
                self._gate.leave(operation, error)
        raise error

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _ref_body(ref: RemoteRef) -> dict[str, str | None]:
    return {"key": ref.key, "version": ref.version}


def _ref_error(ref: RemoteRef, status: object) -> ProviderError:
    where = f"httpjson: {ref.key!r}" + (f" version {ref.version!r}" if ref.version else "")
    if status == "not_found":
        return SecretNotFoundError(f"{where} does not exist")
    if status == "denied":
        return AccessDeniedError(f"{where}: the identity may not read it")
    if status == "invalid":
        return ProviderConfigError(f"{where}: the service refused the key or version as invalid")
    return ProviderError(f"{where}: the service answered an unknown status")


def _value(ref: RemoteRef, result: Mapping[str, Any]) -> RemoteValue | ProviderError:
    version = result.get("version")
    if not isinstance(version, str):
        return ProviderError(f"httpjson: {ref.key!r}: the answer holds no version")
    if isinstance(result.get("value"), str):
        return RemoteValue(value=result["value"].encode(), version=version)
    if isinstance(result.get("binary"), str):
        try:
            data = base64.b64decode(result["binary"], validate=True)
        except binascii.Error:
            return ProviderError(f"httpjson: {ref.key!r}: the binary value is not base64")
        return RemoteValue(value=data, version=version, is_binary=True)
    return ProviderError(f"httpjson: {ref.key!r}: the answer holds no value")


class HttpJsonClient:
    """Reads as one session: batches of 100 refs a call, listings for find."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def _batched(
        self, operation: str, path: str, refs: Sequence[RemoteRef]
    ) -> list[tuple[RemoteRef, Mapping[str, Any]]]:
        unique = list(dict.fromkeys(refs))
        chunks = [unique[i : i + BATCH] for i in range(0, len(unique), BATCH)]
        answers = await asyncio.gather(
            *(
                self._transport.call(operation, "POST", path, {"refs": [_ref_body(r) for r in c]})
                for c in chunks
            )
        )
        pairs: list[tuple[RemoteRef, Mapping[str, Any]]] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ProviderUnavailableError(f"httpjson: {operation}: a malformed answer")
            pairs += [
                (r, x if isinstance(x, dict) else {}) for r, x in zip(chunk, results, strict=True)
            ]
        return pairs

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        """Every ref's value or its own error; up to 100 refs a call."""
        return {
            ref: _value(ref, result)
            if result.get("status") == "ok"
            else _ref_error(ref, result.get("status"))
            for ref, result in await self._batched("read", "/v1/read", refs)
        }

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """The version each ref reads now, without its value; missing and denied refs are
        left out."""
        return {
            ref: result["version"]
            for ref, result in await self._batched("versions", "/v1/versions", refs)
            if result.get("status") == "ok" and isinstance(result.get("version"), str)
        }

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        """Every readable key under query.path whose whole key matches name_regexp."""
        if query.tags:
            raise ProviderConfigError("dataFrom.find.tags: the httpjson service keeps no tags")
        try:
            pattern = re.compile(query.name_regexp) if query.name_regexp else None
        except re.error:
            raise ProviderConfigError(
                f"dataFrom.find.name.regexp {query.name_regexp!r} is not a regular expression"
            ) from None
        answer = await self._transport.call(
            "keys", "GET", "/v1/keys?" + urllib.parse.urlencode({"prefix": query.path or ""})
        )
        keys = answer.get("keys") if isinstance(answer, dict) else None
        if not isinstance(keys, list):
            raise ProviderUnavailableError("httpjson: keys: a malformed answer")
        return [
            RemoteRef(key)
            for key in keys
            if isinstance(key, str) and (pattern is None or pattern.search(key))
        ]

    async def validate(self) -> None:
        """The token is still accepted (whoami)."""
        await self._transport.call("whoami", "GET", "/v1/whoami")

    async def close(self) -> None:
        await self._transport.close()
