"""What the operator keeps about issued credentials, and when it acts on them.

One state per issuing SecretSync, kept in a Secret of its namespace (so a restart or
another replica continues it and issues nothing new): the lease (and certificate)
it holds, the token that issued it, and the leases waiting for revocation after a
re-issue. The credentials themselves are only in the target Secret.

The rule for acting (docs/design/0010-leases.md): a credential is renewed, or
re-issued when it cannot be renewed any further, when the life it has left falls to
(100 - renewPercent)% of its full TTL. For a lease renewed at the same TTL that is
renewPercent% into each period; for a certificate, renewPercent% into its lifetime;
for a lease whose max TTL capped a renewal, early enough that the old credentials
still work for that margin after the new ones are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from secretsync.models.sync import SecretSyncSpec

STATE_PREFIX = "secretsync-lease-"
STATE_ANNOTATION = "secretsync.io/lease-state-of"  # the SecretSync whose leases it holds
UID_LABEL = "secretsync.io/lease-state-uid"  # the SecretSync's uid
STATE_TYPE = "secretsync.io/lease-state"
STATE_KEY = "state.json"
CAP_TOLERANCE = 2.0  # a renewal this much shorter than asked was capped by a max TTL


@dataclasses.dataclass(kw_only=True)
class Held:
    """One issued credential: its lease, the token that issued it, and when it ends."""

    lease_id: str = dataclasses.field(repr=False)
    token: str = dataclasses.field(repr=False)
    own_token: bool  # revoke the token (and so its leases), rather than the lease
    issued_at: float
    renewed_at: float
    ends_at: float  # when it stops working: the earliest of lease, token and notAfter
    period: float  # the full TTL, as issued: renewals ask for it again
    renewable: bool
    capped: bool = False  # a max TTL cut a renewal short: re-issue, do not renew
    renewals: int = 0
    data_hash: str = ""
    keys: tuple[str, ...] = ()  # the Secret keys written (names only)
    request: str = ""  # fingerprint of what was asked for; a change issues anew
    serial: str | None = None  # a certificate's
    mount: str | None = None  # the PKI mount that issued the certificate

    def act_at(self, renew_percent: int) -> float:
        """When to renew it, or re-issue if it cannot be renewed."""
        margin = self.period * (100 - renew_percent) / 100
        return self.ends_at - margin

    def can_renew(self) -> bool:
        return self.renewable and not self.capped and bool(self.lease_id)


@dataclasses.dataclass(kw_only=True)
class Retiring:
    held: Held
    revoke_at: float


@dataclasses.dataclass(kw_only=True)
class LeaseState:
    """The leases of one SecretSync."""

    sync_uid: str
    store: str  # the store key that issued them (to revoke through it)
    current: Held | None = None
    retiring: list[Retiring] = dataclasses.field(default_factory=list)
    reissues: int = 0
    forced: str | None = None  # the force-sync annotation value last acted on
    revoke_on_delete: bool = True  # spec.lease.revokeOnDelete, as last seen
    resource_version: str = ""  # of the state Secret, for conditional writes

    def next_action(self, renew_percent: int) -> float | None:
        times = [r.revoke_at for r in self.retiring]
        if self.current is not None:
            times.append(self.current.act_at(renew_percent))
        return min(times) if times else None

    def to_json(self) -> bytes:
        doc = {
            "syncUid": self.sync_uid,
            "store": self.store,
            "current": _held_doc(self.current) if self.current else None,
            "retiring": [
                {"held": _held_doc(r.held), "revokeAt": r.revoke_at} for r in self.retiring
            ],
            "reissues": self.reissues,
            "forced": self.forced,
            "revokeOnDelete": self.revoke_on_delete,
        }
        return json.dumps(doc, sort_keys=True).encode()


def _held_doc(held: Held) -> dict[str, Any]:
    return {f.name: getattr(held, f.name) for f in dataclasses.fields(held)}


def _held(doc: Mapping[str, Any]) -> Held:
    names = {f.name for f in dataclasses.fields(Held)}
    values = {k: v for k, v in doc.items() if k in names}
    values["keys"] = tuple(values.get("keys") or ())
    return Held(**values)


def parse(raw: bytes, *, resource_version: str) -> LeaseState:
    """A state as kept; raises ValueError (or KeyError/TypeError) when unreadable."""
    doc = json.loads(raw)
    current = doc.get("current")
    return LeaseState(
        sync_uid=str(doc["syncUid"]),
        store=str(doc.get("store") or ""),
        current=_held(current) if current else None,
        retiring=[
            Retiring(held=_held(r["held"]), revoke_at=float(r["revokeAt"]))
            for r in doc.get("retiring") or ()
        ],
        reissues=int(doc.get("reissues") or 0),
        forced=doc.get("forced"),
        revoke_on_delete=doc.get("revokeOnDelete") is not False,
        resource_version=resource_version,
    )


def state_name(sync_name: str) -> str:
    """The state Secret of a SecretSync (names of 253 characters stay within the limit)."""
    name = STATE_PREFIX + sync_name
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(sync_name.encode()).hexdigest()[:16]
    return f"{name[: 253 - 17]}-{digest}"


def request_fingerprint(spec: SecretSyncSpec, store_key: str) -> str:
    """What the credentials depend on: what is issued, and how it is written. The values
    are kept nowhere but the target Secret, so a new template needs new credentials."""
    parts = (
        store_key,
        repr(spec.dynamic),
        repr(spec.certificate),
        repr(spec.effective_target),
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def renewal(held: Held, *, now: float, granted: float, token_left: float | None) -> Held:
    """The credential after a renewal that granted `granted` seconds (and left its token
    `token_left`, None when the token never expires)."""
    ends = now + granted
    if token_left is not None:
        ends = min(ends, now + token_left)
    return dataclasses.replace(
        held,
        renewed_at=now,
        ends_at=ends,
        capped=ends - now < held.period - CAP_TOLERANCE,
        renewals=held.renewals + 1,
    )
