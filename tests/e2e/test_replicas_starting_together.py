"""Two replicas that start together on SecretSyncs that already exist (a scale from zero,
a node restart, `helm install` in namespaced mode or after an uninstall, which keeps the
SecretSyncs) must not both act: only the oldest may read remote secrets and write.

FAILS today (reported as an operator defect). Each replica's engine decides whether to
act at its first reading of the peering object (engine/peering.py), which can come
before the other replica's heartbeat is written: then both engines act until their next
reading, 5 s later (kopf itself keeps the younger one's watches paused, but its engine
runs, and when kopf's own decision lands late too, it syncs every SecretSync a second
time). It is a race: two processes must start within some 15 ms of each other (a
fresh `helm install` often does it, a scale from zero on this node rarely). So the test
makes it likely: it scales the Deployment to zero, makes the operator container wait
for one moment in the near future before it runs `secretsync` with its arguments
unchanged, and scales it to `REPLICAS` (more Pods, more pairs that start close enough;
the chart allows any number with peering). It does that up to `ATTEMPTS` times and
fails at the first start in which the Pods' logs show two engines acting at once; once
the defect is fixed it passes after all attempts (about 27 s each; SECRETSYNC_E2E=full
makes more of them).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from e2e.support import FULL, Figures
from harness import pods, releases, teams, watcher
from harness.devenv import DevEnv

pytestmark = pytest.mark.e2e

# Over four runs here, 3 of 7 starts of four Pods showed it: eight starts miss it about
# once in a hundred runs. While the defect is there the test ends at the first start that
# shows it (about 1 min on average); once it is fixed, all eight take about 3.5 min.
# SECRETSYNC_E2E=full makes fifteen.
ATTEMPTS = 15 if FULL else 4
REPLICAS = 4
# Past the readings a replica needs before it acts (two clear ones a poll apart, after its
# own heartbeat shows: 5 to 15 s) and its first round.
SETTLE = 20.0
# Time for the scheduler, the sandboxes and the containers to be in place.
LEAD = 12.0


@pytest.fixture(scope="module")
def release(node_env: DevEnv, figures: Figures) -> Iterator[releases.Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = releases.Release(env=node_env, name=f"start-{suffix}", namespace=f"secretsync-{suffix}")
    figures.record("helm install --wait, start-up release", rel.install(), "s")
    yield rel
    rel.uninstall()
    node_env.kubectl("delete", "namespace", rel.namespace, "--wait=false")


def _scale(release: releases.Release, replicas: int) -> None:
    release.env.kubectl(
        "scale", f"deployment/{release.fullname}", "-n", release.namespace,
        f"--replicas={replicas}",
    )  # fmt: skip


def _start_together(release: releases.Release, *, replicas: int, at: float) -> None:
    """Scale to `replicas` Pods whose operators start at the wall-clock time `at`: the
    container sleeps until then, then execs the image's `secretsync` with the
    Deployment's own arguments. (Container starts on this node spread over up to a
    second, more than the race needs; a sleep to a common moment does not.)"""
    wait = f"import time; time.sleep(max(0.0, {at} - time.time()))"
    patch = {
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "operator",
                            "command": [
                                "sh",
                                "-c",
                                f"python -c '{wait}' && exec secretsync \"$@\"",
                                "--",
                            ],
                        }
                    ]
                }
            },
        }
    }
    release.env.kubectl(
        "patch", f"deployment/{release.fullname}", "-n", release.namespace,
        "--type=strategic", "-p", json.dumps(patch),
    )  # fmt: skip


def test_of_two_replicas_starting_together_on_existing_secretsyncs_only_one_acts(
    release: releases.Release, figures: Figures
) -> None:
    env = release.env
    api = env.api_client()
    team = teams.create(env, f"start-{uuid.uuid4().hex[:6]}")
    try:
        team.wait_synced()
        for attempt in range(1, ATTEMPTS + 1):
            _scale(release, 0)
            pods.wait_gone(api, release.namespace, release.selector)
            with watcher.watching(
                env,
                release_namespace=release.namespace,
                selector=release.selector,
                logs=env.run_dir / "e2e-logs" / f"{release.name}-start-{attempt}",
            ) as watch:
                _start_together(release, replicas=REPLICAS, at=time.time() + LEAD)
                releases.wait_rolled_out(env, release)
                time.sleep(SETTLE)
                readers = {
                    p.name: sorted(
                        {
                            r["secretsync"]
                            for r in pods.audit_records(pods.log(env, release.namespace, p.name))
                        }
                    )
                    for p in pods.list_pods(api, release.namespace, release.selector)
                }
            summary = watch.summary
            assert summary is not None
            if summary.engine_overlaps:
                figures.record("start-up: attempts until two engines acted at once", attempt)
                figures.record("start-up: remote reads by Pod", readers)
            assert summary.engine_overlaps == [], (
                f"attempt {attempt}: {summary.describe()}; remote reads by Pod: {readers}"
            )
            assert sum(1 for synced in readers.values() if synced) == 1, readers
        figures.record("start-up: attempts without two engines at once", ATTEMPTS)
    finally:
        env.kubectl("delete", "namespace", team.namespace, "--wait=false")
