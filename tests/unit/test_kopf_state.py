"""What the operator relies on in kopf's private parts (handlers/kopfstate.py): checked
here so that a kopf upgrade that changes them fails a test, not production."""

from __future__ import annotations

import asyncio
import inspect

import kopf

from secretsync.handlers import kopfstate


def body(uid: str) -> dict[str, object]:
    return {
        "apiVersion": "secretsync.io/v1alpha1",
        "kind": "SecretSync",
        "metadata": {"uid": uid, "name": uid, "namespace": "team-a"},
    }


def test_kopf_operator_still_takes_insights_and_memories() -> None:
    parameters = inspect.signature(kopf.operator).parameters
    assert {"insights", "memories"} <= set(parameters)


def test_no_per_object_memory_is_kept() -> None:
    async def run() -> int:
        memories = kopfstate.EventMemories()
        for i in range(100):
            memory = await memories.recall(body(f"u{i}"), noticed_by_listing=True)
            assert memory.noticed_by_listing
        return len(list(memories.iter_all_daemon_memories()))

    assert asyncio.run(run()) == 0


def test_watch_only_sets_the_namespaces_and_wakes_kopfs_orchestrator() -> None:
    async def run() -> set[object]:
        insights = kopfstate.new_insights()
        woken = asyncio.Event()

        async def orchestrator() -> None:  # waits as kopf's does, on `revised`
            async with insights.revised:
                await insights.revised.wait()
                woken.set()

        task = asyncio.create_task(orchestrator())
        await asyncio.sleep(0)
        await kopfstate.watch_only(insights, ["team-a", "team-b"])
        await asyncio.wait_for(woken.wait(), 5)
        await task
        await kopfstate.watch_only(insights, ["team-b"])
        return set(insights.namespaces)

    assert asyncio.run(run()) == {"team-b"}
