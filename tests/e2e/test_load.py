"""The hardened Pod under load: 1,000 SecretSyncs over 100 AWS secrets (refresh 1h), synced
by the chart's operator Pod with its read-only root filesystem and its memory limit (the
chart's defaults). All must be Synced with the right bytes, with no write error in the
Pod's log, no restart and no OOM kill; the peak memory is read from the container's
memory cgroup (and the kubelet's summary API, for comparison) and reported."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.support import Figures
from harness import pods, releases, scenario, teams
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e

SYNCS = 1000
REMOTE_SECRETS = 100
SYNC_TIMEOUT = 240.0
# What a write refused by the read-only root filesystem (or a full /tmp) would print.
WRITE_ERRORS = ("Read-only file system", "Errno 30", "Errno 28", "No space left", "PermissionError")


@pytest.fixture(scope="module")
def release(node_env: DevEnv, figures: Figures) -> Iterator[releases.Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = releases.Release(env=node_env, name=f"load-{suffix}", namespace=f"secretsync-{suffix}")
    figures.record("helm install --wait, load release", rel.install(), "s")
    yield rel
    rel.uninstall()
    node_env.kubectl("delete", "namespace", rel.namespace, "--wait=false")


def _synced(api: Any, namespace: str) -> int:
    listed: Any = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
        scenario.GROUP, scenario.VERSION, namespace, "secretsyncs"
    )
    done = 0
    for obj in listed["items"]:
        cond = scenario.ready(obj)
        if (
            cond
            and (cond["status"], cond["reason"]) == ("True", "Synced")
            and cond.get("observedGeneration") == obj["metadata"]["generation"]
        ):
            done += 1
    return done


def test_a_thousand_secretsyncs_are_synced_by_the_hardened_pod_within_its_memory_limit(
    release: releases.Release, figures: Figures
) -> None:
    env = release.env
    api = env.api_client()
    team = teams.create(env, f"load-{uuid.uuid4().hex[:6]}", syncs=False)
    try:
        values = {i: f"v{i}-{uuid.uuid4().hex}" for i in range(REMOTE_SECRETS)}
        for i, value in values.items():
            teams.put_aws(env, f"{team.namespace}/k{i:03d}", value)
        syncs = [
            {
                "apiVersion": scenario.API,
                "kind": "SecretSync",
                "metadata": {"name": f"s-{n:04d}", "namespace": team.namespace},
                "spec": {
                    "storeRef": {"name": "aws"},
                    "refreshInterval": "1h",
                    "data": [
                        {
                            "secretKey": "value",
                            "remoteRef": {"key": f"{team.namespace}/k{n % REMOTE_SECRETS:03d}"},
                        }
                    ],
                },
            }
            for n in range(SYNCS)
        ]
        begun = time.monotonic()
        env.kubectl(
            "apply", "--server-side", "--field-manager=e2e", "-f", "-",
            input_text=yaml.safe_dump_all(syncs),
        )  # fmt: skip
        applied = time.monotonic() - begun
        deadline = begun + SYNC_TIMEOUT
        while (done := _synced(api, team.namespace)) < SYNCS and time.monotonic() < deadline:
            time.sleep(2)
        seconds = time.monotonic() - begun
        figures.record(f"load: apply of {SYNCS} SecretSyncs", applied, "s")
        figures.record(f"load: apply to all {SYNCS} Synced", seconds, "s")
        assert done == SYNCS, f"{done} of {SYNCS} Synced after {SYNC_TIMEOUT:.0f}s"

        secrets: Any = kubernetes.client.CoreV1Api(api).list_namespaced_secret(
            team.namespace, label_selector="app.kubernetes.io/managed-by=secretsync"
        )
        held = {
            s.metadata.name: scenario.secret_data(api, team.namespace, s.metadata.name)
            for s in secrets.items
        }
        assert len(held) == SYNCS
        wrong = [
            name
            for name, data in held.items()
            if data != {"value": values[int(name[2:]) % REMOTE_SECRETS].encode()}
        ]
        assert wrong == []

        listed = pods.list_pods(api, release.namespace, release.selector)
        active = pods.active_pod(api, release.namespace, release.selector)
        usage = {p.name: pods.memory(env, p) for p in listed}
        peak = usage[active.name]
        figures.record(
            "load: active Pod memory",
            {
                "peak_mib": round(peak.max_usage / 2**20, 1),
                "rss_now_mib": round(peak.rss / 2**20, 1),
                "limit_mib": round(peak.limit / 2**20, 1),
                "limit_hits": peak.failcnt,
                "kubelet_working_set_mib": round(
                    (pods.kubelet_working_set(env, active, release.namespace) or 0) / 2**20, 1
                ),
            },
        )
        assert peak.limit == 512 * 2**20  # the chart's default limit is what held
        assert all(u.failcnt == 0 for u in usage.values()), usage
        assert all(p.restarts == 0 and p.last_terminated is None for p in listed), listed
        assert all(pods.root_read_only(env, p) for p in listed)
        for pod in listed:
            text = pods.log(env, release.namespace, pod.name)
            written = [line for line in text.splitlines() if any(e in line for e in WRITE_ERRORS)]
            assert written == [], f"{pod.name}: {json.dumps(written[:5])}"
    finally:
        env.kubectl("delete", "namespace", team.namespace, "--wait=false")
