"""The operator Pods' logs, followed while they run (a Pod's log is gone with the Pod),
and what they say about when each replica's engine acted.

`Follower` runs one `kubectl logs -f` per Pod of a selector, as Pods appear, into files
of a folder; `engine_intervals` reads from those files when each engine started and
paused (the operator logs both, with its own timestamps), and `overlaps` names the
moments two engines acted at once: the exact answer that sampling /healthz can only
approximate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from harness import pods
from harness.devenv import DevEnv

POLL = 0.5


class Follower:
    def __init__(self, env: DevEnv, *, namespace: str, selector: str, folder: Path) -> None:
        self._env = env
        self._namespace = namespace
        self._selector = selector
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log follower", daemon=True)

    def _run(self) -> None:
        api = self._env.api_client()
        while not self._stop.is_set():
            # A listing may fail while the apiserver is busy; the next one will do.
            with contextlib.suppress(Exception):
                for pod in pods.list_pods(api, self._namespace, self._selector):
                    if pod.name not in self._procs and pod.container_id:
                        self._follow(pod.name)
            self._stop.wait(POLL)

    def _follow(self, pod: str) -> None:
        env = self._env
        with (self.folder / f"{pod}.log").open("wb") as out:
            self._procs[pod] = subprocess.Popen(
                [
                    str(env.binaries.kubectl), "--kubeconfig", str(env.kubeconfig), "logs",
                    "--follow", pod, "-n", self._namespace,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


@contextlib.contextmanager
def following(env: DevEnv, *, namespace: str, selector: str, folder: Path) -> Iterator[Follower]:
    follower = Follower(env, namespace=namespace, selector=selector, folder=folder)
    follower.start()
    try:
        yield follower
    finally:
        follower.stop()


@dataclasses.dataclass(frozen=True)
class Interval:
    pod: str
    start: datetime.datetime
    end: datetime.datetime | None  # None: still acting when the log ends


def engine_intervals(folder: Path) -> list[Interval]:
    """When each Pod's engine acted: from each `engine started` to the next `engine paused`."""
    found = []
    for path in sorted(folder.glob("*.log")):
        started: datetime.datetime | None = None
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{") or '"secretsync.engine"' not in line:
                continue
            record = json.loads(line)
            at = datetime.datetime.fromisoformat(record["time"])
            if record["message"].startswith("engine started") and started is None:
                started = at
            elif record["message"].startswith("engine paused") and started is not None:
                found.append(Interval(path.stem, started, at))
                started = None
        if started is not None:
            found.append(Interval(path.stem, started, None))
    return found


def overlaps(intervals: list[Interval], *, since: datetime.datetime) -> list[str]:
    """Each stretch after `since` in which two Pods' engines acted at once, in words with
    its length."""
    out = []
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    for i, a in enumerate(intervals):
        for b in intervals[i + 1 :]:
            if a.pod == b.pod:
                continue
            begin = max(a.start, b.start, since)
            end = min(a.end or far, b.end or far)
            if begin < end:
                length = "open" if end == far else f"{(end - begin).total_seconds():.3f}s"
                out.append(f"{a.pod} and {b.pod} from {begin.time()} ({length})")
    return out
