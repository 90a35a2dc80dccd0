"""What a conversion left behind: per object, each field path that was not converted
faithfully (lossy) or that deserves a look (a note), and why.

Findings name objects, field paths and reasons; never a value, which could be a secret
(a literal caBundle is not, but a template's text or a tag value might be).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, Literal

Severity = Literal["lossy", "note"]
NOT_ESO = "(not ESO)"  # the kind reported for a document that is not an ESO object


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One field of one object: `path` is a JSON field path of the input object."""

    path: str
    severity: Severity
    reason: str


@dataclasses.dataclass(slots=True, kw_only=True)
class ObjectReport:
    """The findings about one input document."""

    source: str  # "file.yaml#2", "-#0", "cluster"
    kind: str
    namespace: str | None
    name: str
    converted: bool = True
    findings: list[Finding] = dataclasses.field(default_factory=list)

    @property
    def title(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    @property
    def lossy(self) -> bool:
        return not self.converted or any(f.severity == "lossy" for f in self.findings)

    def lose(self, path: str, reason: str) -> None:
        """A field that secretsync cannot express: left out, or changed."""
        self.findings.append(Finding(path, "lossy", reason))

    def note(self, path: str, reason: str) -> None:
        """Converted, but worth a look (a difference in behaviour at the edges)."""
        self.findings.append(Finding(path, "note", reason))

    def drop(self, path: str, reason: str) -> None:
        """The whole object is not converted (nothing is written for it)."""
        self.converted = False
        self.lose(path, reason)

    def lossy_paths(self) -> list[str]:
        return [f.path for f in self.findings if f.severity == "lossy"]


@dataclasses.dataclass(slots=True)
class Report:
    """Every object read, in input order."""

    objects: list[ObjectReport] = dataclasses.field(default_factory=list)

    def add(self, obj: ObjectReport) -> ObjectReport:
        self.objects.append(obj)
        return obj

    def __iter__(self) -> Iterator[ObjectReport]:
        return iter(self.objects)

    @property
    def lossy(self) -> bool:
        return any(o.lossy for o in self.objects)

    def summary(self) -> dict[str, int]:
        eso = [o for o in self.objects if o.kind != NOT_ESO]
        return {
            "read": len(eso),
            "converted": sum(o.converted for o in eso),
            "notConverted": sum(not o.converted for o in eso),
            "lossy": sum(o.converted and o.lossy for o in eso),
            "passedOver": len(self.objects) - len(eso),
        }

    def text(self) -> str:
        """The report a person reads on stderr."""
        s = self.summary()
        lines = [
            f"secretsync convert: {s['read']} External Secrets objects read, "
            f"{s['converted']} converted ({s['lossy']} lossy), "
            f"{s['notConverted']} not converted, {s['passedOver']} other documents passed over"
        ]
        for obj in self.objects:
            if not obj.findings:
                continue
            state = "" if obj.converted else " [NOT CONVERTED]"
            lines.append(f"{obj.title} ({obj.source}){state}:")
            lines.extend(
                f"  {'LOSSY' if f.severity == 'lossy' else 'note '} {f.path or '(document)'}: "
                f"{f.reason}"
                for f in obj.findings
            )
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        """The report for `--report FILE.json`."""
        return {
            "summary": self.summary(),
            "lossy": self.lossy,
            "objects": [
                {
                    "source": o.source,
                    "kind": o.kind,
                    "namespace": o.namespace,
                    "name": o.name,
                    "converted": o.converted,
                    "lossy": o.lossy,
                    "findings": [dataclasses.asdict(f) for f in o.findings],
                }
                for o in self.objects
            ],
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"
