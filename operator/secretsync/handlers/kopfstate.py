"""What kopf keeps, adjusted: the namespaces it watches (changed while it runs, for
sharding) and the per-object memory it keeps (none, for an operator of event handlers).

These are the only two places the operator reaches into kopf's private modules, both
through parameters of the public `kopf.operator()` (`insights=`, `memories=`). kopf is
pinned in constraints.txt; tests/faults/test_sharding.py (watched namespaces) and
tests/unit/test_kopf_state.py fail if an upgrade changes what is relied on here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Private, pinned: see the module docstring.
from kopf._cogs.structs import references
from kopf._core.reactor import inventory

# kopf needs a namespace pattern to run namespaced; this one matches no namespace, so
# that nothing is watched until the shards are known.
NO_NAMESPACE = re.compile(r"(?!)")


def new_insights() -> Any:
    """A fresh, empty `Insights` for `kopf.operator(insights=...)`.

    kopf keeps in it the namespaces it serves; its orchestrator starts and stops the
    per-namespace watches whenever that set changes (this is how kopf follows namespaces
    that come and go when it scans them). A sharded replica sets it to its shards'
    namespaces instead, so that it watches those and no other."""
    return references.Insights()


async def watch_only(insights: Any, namespaces: Iterable[str]) -> None:
    """Make kopf watch exactly these namespaces (and the cluster-scoped resources)."""
    async with insights.revised:
        insights.namespaces.clear()
        insights.namespaces.update(references.NamespaceName(ns) for ns in namespaces)
        insights.revised.notify_all()


class EventMemories(inventory.ResourceMemories):
    """kopf's per-object memory, kept for no object.

    kopf remembers, for every object it ever saw, a record for change handlers, daemons,
    indexes and error throttling (about 600 bytes each, with the memo's copy: 12 MiB for
    10,000 SecretSyncs and their Secrets). This operator has event handlers only, which
    use none of it, so each event gets a fresh record that is dropped after it."""

    async def recall(
        self,
        raw_body: Any,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> inventory.ResourceMemory:
        return await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True
        )
