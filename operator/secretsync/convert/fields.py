"""Small helpers the store and sync converters share: typed reads of the input's loose
JSON, and the report of fields nobody converted."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from secretsync.convert.report import ObjectReport
from secretsync.errors import ConfigError
from secretsync.models import duration as durations

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
HTTP_URL = re.compile(r"^https?://")


class Unconvertible(Exception):  # noqa: N818 - control flow inside the converters
    """The object cannot be converted; the report already says why."""


def obj(value: Any) -> Mapping[str, Any]:
    """A mapping, or an empty one for anything else."""
    return value if isinstance(value, Mapping) else {}


def items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A non-empty string (numbers and booleans as YAML might read them), or None."""
    if value is None or value == "" or isinstance(value, Mapping | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in obj(value).items() if v is not None}


def unknown(
    report: ObjectReport,
    value: Mapping[str, Any],
    known: Collection[str],
    path: str,
    *,
    why: str = "secretsync has no equivalent",
) -> None:
    """Report every set field of value that no converter reads."""
    for key, val in value.items():
        if key not in known and val not in (None, "", [], {}, False):
            report.lose(f"{path}.{key}", f"not converted: {why}")


def defaulted(
    report: ObjectReport, value: Mapping[str, Any], field: str, allowed: Collection[str], path: str
) -> None:
    """A field that converts only at its default (or equivalent) values."""
    got = text(value.get(field))
    if got is not None and got not in allowed:
        wanted = " or ".join(sorted(allowed))
        report.lose(f"{path}.{field}", f"{got!r} is not converted: secretsync behaves as {wanted}")


def duration(value: Any) -> str | None:
    """A Go duration the CRDs accept ("1h0m0s", "0", "30s"), or None."""
    got = text(value)
    if got is None:
        return None
    try:
        durations.parse(got, field="")
    except ConfigError:
        return None
    return got
