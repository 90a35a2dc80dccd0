"""What the engine tells people: statuses (written only when what they say changes) and
Events. Builders are pure; `Reporter` is the one place that writes them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from secretsync.engine.outcomes import Outcome
from secretsync.errors import KubeError
from secretsync.kube import Kube
from secretsync.models import status as st
from secretsync.models.status import Condition, Status

CHANGES = {"created": "Created", "updated": "Updated", "deleted": "Deleted"}

logger = logging.getLogger("secretsync.engine")


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sync_status(previous: Status, outcome: Outcome, generation: int) -> Status:
    """A SecretSync's status after a round: Ready from the outcome, other conditions kept;
    lastSyncTime moves only when the Secret changed."""
    now = now_text()
    ready = st.ready_condition(
        ok=outcome.ok,
        reason=outcome.reason,
        message=outcome.message,
        generation=generation,
        previous=previous,
        now=now,
    )
    changed = outcome.write in CHANGES
    return Status(
        conditions=(ready, *(c for c in previous.conditions if c.type != "Ready")),
        observed_generation=generation,
        last_sync_time=now
        if changed or previous.last_sync_time is None
        else previous.last_sync_time,
        synced_versions=outcome.versions if outcome.ok else previous.synced_versions,
        data_hash=outcome.data_hash if outcome.ok else previous.data_hash,
    )


def rollout_status(previous: Status, problems: list[str], generation: int) -> Status:
    """A `Rollout` condition beside Ready: a missing workload is reported, not fatal."""
    ok = not problems
    flag: st.ConditionStatus = "True" if ok else "False"
    old = next((c for c in previous.conditions if c.type == "Rollout"), None)
    cond = Condition(
        type="Rollout",
        status=flag,
        reason="Restarted" if ok else "WorkloadNotReady",
        message="workloads are restarted when the data changes" if ok else "; ".join(problems),
        last_transition_time=old.last_transition_time
        if old is not None and old.status == flag
        else now_text(),
        observed_generation=generation,
    )
    others = tuple(c for c in previous.conditions if c.type != "Rollout")
    return previous.model_copy(update={"conditions": (*others, cond)})


def store_status(previous: Status, outcome: Outcome, generation: int) -> Status:
    ready = st.ready_condition(
        ok=outcome.ok,
        reason=outcome.reason,
        message=outcome.message,
        generation=generation,
        previous=previous,
        now=now_text(),
    )
    return Status(conditions=(ready,), observed_generation=generation)


class Reporter:
    """Writes statuses and Events; a failure to report is logged, never fatal."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def status(
        self, *, kind: str, namespace: str, name: str, old: Status, new: Status, force: bool = False
    ) -> Status:
        """Patch the status if it says something new (or force); returns what it now holds."""
        if not force and st.same_except_time(new, old):
            return old
        try:
            await self._kube.patch_status(
                kind=kind, namespace=namespace, name=name, status=st.to_patch(new)
            )
        except KubeError as exc:
            logger.warning("could not write status of %s %s/%s: %s", kind, namespace, name, exc)
            return old
        return new

    async def event(
        self, *, namespace: str, name: str, uid: str, type_: str, reason: str, message: str
    ) -> None:
        """An Event about a SecretSync."""
        try:
            await self._kube.post_event(
                kind="SecretSync",
                namespace=namespace,
                name=name,
                uid=uid,
                type_=type_,
                reason=reason,
                message=message,
            )
        except KubeError as exc:
            logger.warning("could not post Event for SecretSync %s/%s: %s", namespace, name, exc)
