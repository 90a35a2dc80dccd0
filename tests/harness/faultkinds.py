"""What the fault proxy can do to one request, and the answer each fault sends.

Faults that replace the answer (Throttle, ServerError, AwsError, VaultError) answer in
the shape of the request's protocol (errorshapes.py); the others act on the connection
(Delay, Reset, Stall) and are carried out by the proxy itself (faultproxy.py).
"""

from __future__ import annotations

import dataclasses

from harness import errorshapes


@dataclasses.dataclass(frozen=True, kw_only=True)
class Throttle:
    """Rate limiting. AWS, HTTP 400: ThrottlingException (JSON protocols; SQS's is
    RequestThrottled) or Throttling (query protocol). Vault: 429.

    retry_after (seconds, or an HTTP date as a string) adds Retry-After; Vault always sends
    one with a 429 (a quota's interval), so it defaults to 1 s there."""

    retry_after: float | str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerError:
    """A server fault. AWS: 500 InternalFailure, 503 ServiceUnavailable, other statuses
    (502, 504) as a gateway's HTML page. Vault: 500 and 503 (sealed) with its errors body,
    others as a gateway's page."""

    status: int = 500


@dataclasses.dataclass(frozen=True, kw_only=True)
class AwsError:
    """Any AWS error code, in the request's protocol (AccessDenied, ExpiredToken...)."""

    code: str
    status: int = 400
    message: str = ""
    sender: bool = True  # the query protocol's <Type>: Sender (client fault) or Receiver
    retry_after: float | str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class VaultError:
    """Any Vault error status with its `errors` list."""

    status: int
    errors: tuple[str, ...] = ()
    retry_after: float | str | None = None


@dataclasses.dataclass(frozen=True)
class Delay:
    """Wait, then forward. Other connections are unaffected (a thread per connection);
    `FaultProxy.release()` ends the wait early."""

    seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reset:
    """Abort the connection with a TCP RST (SO_LINGER 0): the client sees ECONNRESET.
    after_upstream=True forwards first, so the upstream acted but the client never knows."""

    after_upstream: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stall:
    """Forward, send the answer's headers and the first `body_bytes` of its body (default
    half), then send nothing until `release()` or `timeout`, and close: the client waits
    on a half-read body. An empty body is held back with its headers."""

    body_bytes: int | None = None
    timeout: float = 60.0


Fault = Throttle | ServerError | AwsError | VaultError | Delay | Reset | Stall


def answer(
    fault: Fault, *, kind: str, service: str, vault_path: str, content_type: str
) -> errorshapes.Answer | None:
    """The answer a fault sends instead of the upstream's, for a request of this kind
    (errorshapes.AWS_JSON, AWS_QUERY, VAULT), JSON target prefix and Vault path; None for
    faults that do not replace the answer (Delay, Reset, Stall)."""
    vault = kind == errorshapes.VAULT
    if isinstance(fault, Throttle):
        if vault:
            return errorshapes.vault_error(
                429,
                (f'request path "{vault_path}": rate limit quota exceeded',),
                retry_after=1 if fault.retry_after is None else fault.retry_after,
            )
        code = errorshapes.throttle_code(kind, service)
        fault = AwsError(code=code, message="Rate exceeded", retry_after=fault.retry_after)
    if isinstance(fault, ServerError):
        if vault and fault.status in errorshapes.VAULT_SERVER_ERRORS:
            return errorshapes.vault_error(
                fault.status, errorshapes.VAULT_SERVER_ERRORS[fault.status]
            )
        if vault or fault.status not in errorshapes.AWS_SERVER_CODES:
            return errorshapes.gateway_error(fault.status)
        code = errorshapes.AWS_SERVER_CODES[fault.status]
        fault = AwsError(code=code, status=fault.status, message=code, sender=False)
    if isinstance(fault, AwsError):
        return errorshapes.aws_error(
            kind,
            code=fault.code,
            status=fault.status,
            message=fault.message,
            sender=fault.sender,
            content_type=content_type or "application/x-amz-json-1.1",
            retry_after=fault.retry_after,
        )
    if isinstance(fault, VaultError):
        return errorshapes.vault_error(fault.status, fault.errors, retry_after=fault.retry_after)
    return None
