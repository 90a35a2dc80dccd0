"""hvac and requests exceptions turned into the operator's errors.

Messages are built here from what we asked (operation, path, HTTP status),
never from the server's or hvac's text: a Vault error body may echo request
data, and hvac's str() includes it. Callers raise the result `from None` so
the SDK exception (and its body) is not chained into a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

import hvac.exceptions
import requests

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)

_STATUS: Mapping[type[Exception], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}

_UNAVAILABLE = (
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultNotInitialized,
)


def _status(exc: Exception) -> str:
    code = _STATUS.get(type(exc))
    return f"HTTP {code}" if code else "unexpected HTTP status"


def is_kv_not_found(exc: hvac.exceptions.InvalidPath) -> bool:
    """Whether a 404 is the KV engine saying "no such secret (version)".

    Vault answers 404 for other reasons too: an unknown mount ("no handler for
    route"), an unknown Enterprise namespace, a KV v1 path on a KV v2 mount.
    Treating those as "not found" would let a typo delete synced Secrets under
    deletionPolicy Delete, so only the engine's own shapes count: an empty
    error list, or a KV v2 body describing a deleted or destroyed version.
    """
    body = exc.json
    if not isinstance(body, Mapping):
        return False
    data = body.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("metadata"), Mapping):
        return True
    return body.get("errors") == [] and not body.get("warnings")


def translate(
    exc: Exception,
    *,
    action: str,
    path: str,
    login: bool = False,
    retry_after: float | None = None,
) -> ProviderError:
    """The operator's error for an SDK exception raised while doing `action` on `path`.

    `login` marks calls to an auth method's login endpoint, where a refusal is
    a failed login (ProviderAuthError) rather than a denied read.
    """
    where = f"{action} {path}"
    if isinstance(exc, hvac.exceptions.VaultError):
        status = _status(exc)
        if isinstance(exc, hvac.exceptions.InvalidPath):
            if login:
                return ProviderConfigError(
                    f"vault: {where} failed ({status}): no auth method is enabled at that "
                    "mount path; check auth.*.mountPath"
                )
            if is_kv_not_found(exc):
                return SecretNotFoundError(f"vault: {where}: secret not found ({status})")
            return ProviderConfigError(
                f"vault: {where} failed ({status}): the server has no such path (no such "
                "mount or namespace, or a KV engine of the other version); check "
                "spec.provider.vault path, version and namespace"
            )
        if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.InvalidRequest) and login:
            # Vault answers 400 for a wrong AppRole secret id or a JWT it cannot
            # verify and 403 for a ServiceAccount the role does not bind; to the
            # user all of them mean "this identity may not log in as that role".
            return ProviderAuthError(
                f"vault: {where} refused ({status}): check the role, its bindings and "
                "the credentials"
            )
        if isinstance(exc, hvac.exceptions.Forbidden):
            return AccessDeniedError(
                f"vault: {where} denied ({status}): the store's Vault policy must grant this path"
            )
        if isinstance(exc, hvac.exceptions.Unauthorized):
            return ProviderAuthError(f"vault: {where} refused the token ({status})")
        if isinstance(exc, _UNAVAILABLE):
            return ProviderUnavailableError(
                f"vault: {where} failed ({status}); will retry", retry_after=retry_after
            )
        if isinstance(exc, hvac.exceptions.InvalidRequest):
            return ProviderConfigError(f"vault: {where} was rejected as invalid ({status})")
        return ProviderError(f"vault: {where} failed ({status})")
    if isinstance(exc, requests.exceptions.SSLError):
        return ProviderConfigError(
            f"vault: {where}: TLS verification of the server failed; check caBundle or caRef"
        )
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return ProviderUnavailableError(f"vault: {where}: the server is unreachable; will retry")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    ):
        return ProviderConfigError(f"vault: {where}: spec.provider.vault.server is not a URL")
    return ProviderError(f"vault: {where} failed ({type(exc).__name__})")
