"""What the audit reports: checks, findings and the notes on what it could not check.

A finding names an object and a field, and says why (a detector's name, an age, a
reason); it never carries a value, not even a prefix of one.
"""

from __future__ import annotations

import dataclasses
import enum


class Severity(enum.IntEnum):
    """Ordered, so that `--fail-on medium` also fails on high and critical."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            known = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of: {known})") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    id: str
    name: str
    severity: Severity
    summary: str  # what it finds, one line
    fix: str  # what to do about it, one or two sentences


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class ObjectRef:
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Finding:
    check: str  # a Check id
    ref: ObjectRef
    field: str  # where in the object, e.g. spec.template.spec.containers[app].env[TOKEN].value
    evidence: str  # why, in words; never a value


@dataclasses.dataclass(frozen=True, kw_only=True, order=True)
class Note:
    """A check that could not run somewhere (forbidden, provider down): the report says
    so rather than claim the cluster is clean."""

    check: str
    where: str
    reason: str


LITERAL_IN_WORKLOAD = Check(
    id="SS001",
    name="literal-secret-in-workload",
    severity=Severity.HIGH,
    summary="A secret is written literally in a workload's env, command or args.",
    fix="Move the value into a secret manager, sync it with a SecretSync and mount the "
    "Secret as a volume; rotate the exposed value, it is in the object's history.",
)
LITERAL_IN_CONFIG_MAP = Check(
    id="SS002",
    name="literal-secret-in-configmap",
    severity=Severity.HIGH,
    summary="A ConfigMap holds a secret (ConfigMaps are readable by far more subjects).",
    fix="Move the value into a secret manager and sync it into a Secret; rotate the exposed value.",
)
SECRET_IN_ENV = Check(
    id="SS003",
    name="secret-as-environment-variable",
    severity=Severity.LOW,
    summary="A Secret reaches a container as environment variables.",
    fix="Mount the Secret as a volume: environment variables are inherited by child "
    "processes, land in crash dumps and debug output, and never see a rotation.",
)
HAND_MADE_SECRET = Check(
    id="SS004",
    name="hand-made-secret",
    severity=Severity.MEDIUM,
    summary="An Opaque Secret no controller manages (made by hand or by a script).",
    fix="Put the value in a secret manager and let a SecretSync write the Secret, so that it "
    "has an owner, an audit trail and a rotation.",
)
SHARED_ACROSS_ENVIRONMENTS = Check(
    id="SS005",
    name="secret-shared-across-environments",
    severity=Severity.HIGH,
    summary="One remote secret is synced into namespaces of different environments.",
    fix="Give each environment its own remote secret (and its own store identity), so that "
    "a leak in one does not open the others.",
)
NOT_ROTATED = Check(
    id="SS006",
    name="remote-secret-not-rotated",
    severity=Severity.MEDIUM,
    summary="A synced remote secret has rotation off, or has not changed for too long.",
    fix="Turn on the provider's rotation (Secrets Manager) or rotate the value on a schedule; "
    "secretsync re-syncs and restarts the workloads when it changes.",
)
STATIC_CREDENTIALS = Check(
    id="SS007",
    name="store-with-static-or-ambient-credentials",
    severity=Severity.MEDIUM,
    summary="A store logs in with long-lived keys or a token, or with the operator's own "
    "identity, where a per-namespace identity is possible.",
    fix="Use auth.serviceAccount (AWS: AssumeRoleWithWebIdentity) or Vault kubernetes/JWT "
    "auth with the namespace's own ServiceAccount.",
)
FAILING_SYNC = Check(
    id="SS008",
    name="secretsync-failing",
    severity=Severity.MEDIUM,
    summary="A SecretSync has not been Ready for longer than the threshold.",
    fix="Read the SecretSync's Ready condition and Events; its Secret keeps the last good data "
    "and will not rotate until the cause is fixed.",
)

CHECKS: tuple[Check, ...] = (
    LITERAL_IN_WORKLOAD,
    LITERAL_IN_CONFIG_MAP,
    SECRET_IN_ENV,
    HAND_MADE_SECRET,
    SHARED_ACROSS_ENVIRONMENTS,
    NOT_ROTATED,
    STATIC_CREDENTIALS,
    FAILING_SYNC,
)
BY_ID = {c.id: c for c in CHECKS}
