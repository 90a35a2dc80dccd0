"""Status of the three kinds: a `Ready` condition (kstatus style) plus sync facts.

Statuses never carry secret values: only reasons, versions and a keyed hash.
"""

from __future__ import annotations

from typing import Any, Literal

from secretsync.models.base import Model

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
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
    DELETED = "RemoteDeleted"


class Condition(Model):
    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str | None = None
    observed_generation: int | None = None


class Status(Model):
    """What the operator reports; fields it does not manage are left alone by merge patches."""

    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    last_sync_time: str | None = None
    synced_versions: dict[str, str] | None = None
    data_hash: str | None = None

    def ready(self) -> Condition | None:
        return next((c for c in self.conditions if c.type == "Ready"), None)


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
    try:
        return Status.model_validate(raw or {})
    except ValueError:
        return Status()


def to_patch(status: Status) -> dict[str, Any]:
    """The JSON for a status merge patch (None fields are left out)."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def same_except_time(a: Status, b: Status) -> bool:
    """Whether two statuses say the same thing, ignoring timestamps."""
    drop: Any = {"last_sync_time": True, "conditions": {"__all__": {"last_transition_time"}}}
    return bool(a.model_dump(exclude=drop) == b.model_dump(exclude=drop))
