"""Label selectors over namespaces, for ClusterExternalSecret's namespaceSelector(s)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import items, obj, strings


class SelectorError(ValueError):
    """A selector this module cannot evaluate (an unknown operator)."""


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether the labels satisfy a Kubernetes LabelSelector (empty selects everything)."""
    for key, value in strings(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for raw in items(selector.get("matchExpressions")):
        expr = obj(raw)
        key, op = str(expr.get("key")), str(expr.get("operator"))
        values = [str(v) for v in items(expr.get("values"))]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(f"operator {op!r}")
    return True
