"""What a sync attempt ended with, and how errors map to the `Ready` condition."""

from __future__ import annotations

import dataclasses

from secretsync.engine.writer import WriteOutcome
from secretsync.errors import (
    AccessDeniedError,
    ConfigError,
    DocumentRefusedError,
    KubeError,
    KubeNotFoundError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderUnavailableError,
    SecretNotFoundError,
    SecretSyncError,
)
from secretsync.models.status import LeaseStatus, Reason


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """One SecretSync's result in a sync round."""

    ok: bool
    reason: str
    message: str
    retry: bool = False  # back off and retry before the next refresh
    retry_after: float | None = None  # seconds the provider asks to wait, if known
    aligned: bool = False  # retry_after is the identity's open circuit: wait exactly that
    write: WriteOutcome = "unchanged"
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    data_hash: str | None = None
    # Issued credentials (leases.py): when the round next has something to do, and what
    # the status says of the lease (kept as it was when None).
    next_at: float | None = None
    lease: LeaseStatus | None = None


def reason_for(error: BaseException) -> tuple[str, bool]:
    """(reason, retry soon) for an error; the order matters: subclasses first.

    Everything the provider or the cluster may change soon (a secret created, a policy
    fixed, a ServiceAccount added) is retried with backoff up to the refresh interval;
    only a spec error waits for the spec to change."""
    if isinstance(error, SecretNotFoundError):
        return Reason.NOT_FOUND, True
    if isinstance(error, AccessDeniedError):
        return Reason.ACCESS_DENIED, True
    if isinstance(error, ProviderAuthError):
        return Reason.AUTH_FAILED, True
    if isinstance(error, KubeNotFoundError):
        return Reason.AUTH_FAILED, True  # a ServiceAccount or credential Secret is missing
    if isinstance(error, ProviderConfigError | ConfigError):
        return Reason.INVALID_SPEC, False
    if isinstance(error, DocumentRefusedError):
        return Reason.INVALID_DOCUMENT, True  # the document may be fixed (and is watched)
    if isinstance(error, ProviderUnavailableError | KubeError):
        return Reason.PROVIDER_UNAVAILABLE, True
    return Reason.PROVIDER_UNAVAILABLE, True


def failed(error: SecretSyncError, *, context: str = "") -> Outcome:
    """The outcome for an error; its message is ours and carries no value."""
    reason, retry = reason_for(error)
    text = f"{context}: {error}" if context else str(error)
    wait = error.retry_after if isinstance(error, ProviderUnavailableError) else None
    return Outcome(ok=False, reason=reason, message=text, retry=retry, retry_after=wait)


def audit_outcome(error: BaseException | None) -> str:
    """The audit record's outcome word for a read."""
    if error is None:
        return "success"
    if isinstance(error, SecretNotFoundError):
        return "not_found"
    if isinstance(error, AccessDeniedError):
        return "denied"
    if isinstance(error, ProviderAuthError):
        return "auth_failed"
    if isinstance(error, ProviderUnavailableError):
        return "unavailable"
    return "error"
