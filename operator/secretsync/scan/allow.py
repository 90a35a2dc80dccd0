"""The reviewed allow-list: findings a team accepted, each with a reason.

```yaml
allow:
  - check: SS003              # required
    namespace: legacy         # optional, a glob; omitted: any
    kind: Deployment          # optional
    name: "api-*"             # optional, a glob
    field: "*.env[TOKEN]*"    # optional, a glob
    reason: "moves to a volume in release 4.2 (PLAT-118)"   # required
```
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from pathlib import Path

import yaml

from secretsync.errors import ConfigError
from secretsync.scan.model import BY_ID, Finding

FIELDS = ("check", "namespace", "kind", "name", "field", "reason")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Allowed:
    check: str
    reason: str
    namespace: str = "*"
    kind: str = "*"
    name: str = "*"
    field: str = "*"

    def covers(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and fnmatch.fnmatchcase(finding.ref.namespace or "", self.namespace)
            and fnmatch.fnmatchcase(finding.ref.kind, self.kind)
            and fnmatch.fnmatchcase(finding.ref.name, self.name)
            and fnmatch.fnmatchcase(finding.field, self.field)
        )


def load(path: Path) -> list[Allowed]:
    """The entries of an allow-list file; a malformed entry is an error naming it."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the allow-list ({type(exc).__name__})") from None
    entries = (doc or {}).get("allow") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a mapping with a list `allow`")
    out = []
    for index, entry in enumerate(entries):
        where = f"{path}: allow[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        if entry.get("check") not in BY_ID:
            raise ConfigError(f"{where}: check must be one of {', '.join(BY_ID)}")
        if not str(entry.get("reason") or "").strip():
            raise ConfigError(f"{where}: a reason is required (why this finding is accepted)")
        out.append(Allowed(**{k: str(v) for k, v in entry.items()}))
    return out


def split(
    findings: Sequence[Finding], allowed: Sequence[Allowed]
) -> tuple[list[Finding], list[Finding]]:
    """(findings still reported, findings the allow-list covers)."""
    kept: list[Finding] = []
    covered: list[Finding] = []
    for finding in findings:
        (covered if any(a.covers(finding) for a in allowed) else kept).append(finding)
    return kept, covered
