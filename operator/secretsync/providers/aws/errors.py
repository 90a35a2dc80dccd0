"""botocore exceptions -> secretsync.errors, with messages built here.

The SDK's own message text is never reused: AWS (and emulators) may quote
request input in it. A message names the operation, the remote key and the
AWS error code only, and says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from botocore import exceptions as botocore_exceptions

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.providers.retryafter import retry_after_seconds

_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "NoSuchKey",  # S3 (SOPS documents)
        "NoSuchBucket",
    }
)
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
_AUTH = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
        "IDPCommunicationError",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_UNAVAILABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "InternalServerError",
    }
)
_CONFIG = frozenset({"ValidationException", "InvalidParameterException"})

# An error code comes from the response body; keep only what a code can be made of,
# so a misbehaving endpoint cannot smuggle request text into our message.
_CODE_CHARS = re.compile(r"[^A-Za-z0-9._:-]")
# When botocore cannot parse an error body it reports the HTTP status as the code and
# the raw body as the message. moto, enforcing IAM, answers JSON-protocol services
# with a Query-style XML body; its <Code> is the real code (read, never repeated).
_XML_CODE = re.compile(r"<Code>([A-Za-z0-9._:-]{1,64})</Code>")


def _code_of(error: Mapping[str, object]) -> str:
    code = str(error.get("Code", ""))
    if code.isdigit():
        match = _XML_CODE.search(str(error.get("Message", "")))
        if match:
            return match.group(1)
    return code


def _clean_code(code: object) -> str:
    return _CODE_CHARS.sub("", str(code))[:64] or "UnknownError"


def _subject(key: str | None) -> str:
    return f" of {key!r}" if key else ""


def for_code(
    code: str,
    *,
    operation: str,
    key: str | None,
    status: int | None = None,
    deleted: bool = False,
    retry_after: float | None = None,
) -> ProviderError:
    """The error for an AWS error code (from a ClientError or a batch's per-item Errors).

    `deleted` marks Secrets Manager's InvalidRequestException for a secret scheduled
    for deletion: to its readers that secret is gone, so it counts as not found.
    `retry_after` is the response's Retry-After, in seconds, if it had one.
    """
    code = _clean_code(code)
    subject = _subject(key)
    if code in _NOT_FOUND or deleted:
        return SecretNotFoundError(
            f"AWS {operation}{subject}: the remote secret does not exist ({code})"
        )
    if code in _DENIED:
        return AccessDeniedError(
            f"AWS {operation}{subject}: access denied ({code}); check the IAM policy of the "
            "store's role (and its trust policy when a role is assumed)"
        )
    if code in _AUTH:
        return ProviderAuthError(
            f"AWS {operation}{subject}: AWS refused the store's credentials ({code}); "
            "check spec.provider.aws.auth and role"
        )
    if code.isdigit() and status in (401, 403):
        # No AWS error code, just a refusal (a proxy, an unparseable body): not provably
        # "denied", certainly not "not found".
        return ProviderAuthError(
            f"AWS {operation}{subject}: the endpoint refused the request (HTTP {status}); "
            "check spec.provider.aws.auth, role and endpoint"
        )
    if code in _UNAVAILABLE or (status is not None and (status >= 500 or status == 429)):
        return ProviderUnavailableError(
            f"AWS {operation}{subject}: the service is throttling or unavailable ({code}); "
            "it will be retried",
            retry_after=retry_after,
        )
    if code in _CONFIG:
        return ProviderConfigError(
            f"AWS {operation}{subject}: the request was rejected as invalid ({code}); "
            "check the remote key and spec.provider.aws"
        )
    return ProviderError(f"AWS {operation}{subject} failed ({code})")


def is_scheduled_deletion(code: str, message: object) -> bool:
    """Whether Secrets Manager refused because the secret is scheduled for deletion.

    AWS and moto say so only in the message ("marked for deletion", "marked
    deleted"); the message is inspected here and never repeated.
    """
    text = str(message).lower()
    return code == "InvalidRequestException" and "marked" in text and "delet" in text


def translate(exc: Exception, *, operation: str, key: str | None) -> ProviderError:
    """The secretsync error for an exception the SDK raised during one call."""
    if isinstance(exc, botocore_exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = _code_of(error)
        metadata = exc.response.get("ResponseMetadata", {})
        status = metadata.get("HTTPStatusCode")
        return for_code(
            code,
            operation=operation,
            key=key,
            status=status if isinstance(status, int) else None,
            deleted=is_scheduled_deletion(code, error.get("Message", "")),
            retry_after=retry_after_seconds(metadata.get("HTTPHeaders", {}).get("retry-after")),
        )
    kind = type(exc).__name__
    subject = _subject(key)
    if isinstance(exc, botocore_exceptions.ConnectionError | botocore_exceptions.HTTPClientError):
        return ProviderUnavailableError(
            f"AWS {operation}{subject}: could not reach the endpoint ({kind}); "
            "check spec.provider.aws.endpoint and region; it will be retried"
        )
    if isinstance(
        exc,
        botocore_exceptions.NoCredentialsError
        | botocore_exceptions.PartialCredentialsError
        | botocore_exceptions.CredentialRetrievalError
        | botocore_exceptions.TokenRetrievalError,
    ):
        return ProviderAuthError(
            f"AWS {operation}{subject}: no usable credentials ({kind}); "
            "check spec.provider.aws.auth"
        )
    if isinstance(exc, ValueError):  # botocore's InvalidRegionError, "Invalid endpoint"
        return ProviderConfigError(
            f"AWS {operation}{subject}: the region or endpoint is not usable ({kind}); "
            "check spec.provider.aws.region and endpoint"
        )
    if isinstance(exc, botocore_exceptions.ParamValidationError):
        return ProviderConfigError(
            f"AWS {operation}{subject}: the request is invalid ({kind}); "
            "check the remote key and spec.provider.aws"
        )
    return ProviderError(f"AWS {operation}{subject} failed ({kind})")
