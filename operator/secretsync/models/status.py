"""Status of the three kinds: a `Ready` condition (kstatus style) plus sync facts.

Statuses never carry secret values: only reasons, versions and a keyed hash.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import ValidationError

from secretsync.models.base import Interned, Parser, compact

ConditionStatus = Literal["True", "False", "Unknown"]


class Reason:
    """The `Ready` condition's reasons."""

    SYNCED = "Synced"
    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    STORE_NOT_READY = "StoreNotReady"
    AUTH_FAILED = "AuthFailed"
    ACCESS_DENIED = "AccessDenied"
    NOT_FOUND = "NotFound"
    INVALID_DOCUMENT = "InvalidDocument"  # a SOPS document refused (docs/providers/sops.md)
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
    DELETED = "RemoteDeleted"


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: Interned
    status: ConditionStatus
    reason: Interned
    message: Interned
    last_transition_time: Interned | None = None
    observed_generation: int | None = None


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseStatus:
    """Issued credentials (spec.dynamic, spec.certificate): times and counts, never a
    lease id."""

    expires_at: Interned
    next_renewal_at: Interned | None = None
    renewals: int = 0
    reissues: int = 0


@compact
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """What the operator reports; fields it does not manage are left alone by merge patches."""

    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    last_sync_time: Interned | None = None
    synced_versions: dict[Interned, Interned] | None = None
    data_hash: str | None = None
    lease: LeaseStatus | None = None

    def ready(self) -> Condition | None:
        return next((c for c in self.conditions if c.type == "Ready"), None)


_STATUS = Parser(Status)
EMPTY = Status()


def ready_condition(
    *, ok: bool, reason: str, message: str, generation: int | None, previous: Status, now: str
) -> Condition:
    """A Ready condition, keeping lastTransitionTime when the status did not flip."""
    status: ConditionStatus = "True" if ok else "False"
    old = previous.ready()
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def parse(raw: Any) -> Status:
    """The status as stored; an unreadable one counts as empty."""
    if not raw:
        return EMPTY
    try:
        return _STATUS.parse(raw)
    except ValidationError:
        return EMPTY


def to_patch(status: Status) -> dict[str, Any]:
    """The JSON for a status merge patch (None fields are left out)."""
    return _STATUS.dump(status)


def _timeless(status: Status) -> Status:
    return dataclasses.replace(
        status,
        last_sync_time=None,
        conditions=tuple(
            dataclasses.replace(c, last_transition_time=None) for c in status.conditions
        ),
    )


def same_except_time(a: Status, b: Status) -> bool:
    """Whether two statuses say the same thing, ignoring timestamps."""
    return _timeless(a) == _timeless(b)
