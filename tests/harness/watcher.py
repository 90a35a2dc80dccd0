"""What happens to the operator and to its SecretSyncs while something disrupts it (a
`helm upgrade`, a node drain): sampled twice a second in a thread, from the host.

Each sample counts the operator Pods that are Ready, asks each live Pod its role
(/healthz, harness/pods.py), and checks that every SecretSync of a team is Ready=True
and that its Secret holds the expected bytes. The summary gives the worst of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes

from harness import pods, scenario
from harness.teams import Team

INTERVAL = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    at: float  # seconds since the watch began
    ready_pods: int
    active: tuple[str, ...]  # the Pods that said they act
    problems: tuple[str, ...]  # SecretSyncs not Ready, Secrets missing or wrong


@dataclasses.dataclass(frozen=True, kw_only=True)
class Summary:
    samples: int
    seconds: float
    min_ready_pods: int
    max_active: int
    # The longest stretch of samples in which no Pod said it was active.
    longest_without_active: float
    problems: list[str]  # every distinct problem seen, with the first time it was seen
    errors: list[str]  # samples that could not be taken (API errors), at most a few

    def describe(self) -> str:
        return (
            f"{self.samples} samples over {self.seconds:.1f}s: min Ready operator Pods "
            f"{self.min_ready_pods}, max active {self.max_active}, longest without an active "
            f"replica {self.longest_without_active:.1f}s, problems {self.problems or 'none'}"
        )


class Watcher:
    def __init__(self, *, release_namespace: str, selector: str, team: Team) -> None:
        self._namespace = release_namespace
        self._selector = selector
        self._team = team
        # A client of its own: the test's thread uses the other one meanwhile.
        self._api = team.env.api_client()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.summary: Summary | None = None  # set when the watch ends
        self._begun = 0.0

    def _sample(self) -> Sample:
        at = time.monotonic() - self._begun
        listed = pods.list_pods(self._api, self._namespace, self._selector)
        ready = sum(1 for p in listed if p.ready and not p.terminating)
        active = tuple(p.name for p in listed if pods.role(p.ip) == "active")
        problems = []
        custom = kubernetes.client.CustomObjectsApi(self._api)
        items: list[Any] = custom.list_namespaced_custom_object(
            scenario.GROUP, scenario.VERSION, self._team.namespace, "secretsyncs"
        )["items"]
        by_name = {o["metadata"]["name"]: o for o in items}
        for name, (target, data) in self._team.expected.items():
            cond = scenario.ready(by_name.get(name, {}))
            if cond is None or cond["status"] != "True":
                problems.append(f"SecretSync {name} not Ready ({cond and cond['reason']})")
            got = scenario.secret_data(self._api, self._team.namespace, target)
            if got is None:
                problems.append(f"Secret {target} missing")
            elif got != data:
                problems.append(f"Secret {target} holds other data")
        return Sample(at=at, ready_pods=ready, active=active, problems=tuple(problems))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._sample())
            except Exception as exc:  # noqa: BLE001 - reported in the summary, not raised here
                if len(self.errors) < 5:
                    self.errors.append(repr(exc))
            self._stop.wait(INTERVAL)

    def start(self) -> None:
        self._begun = time.monotonic()
        self._thread.start()

    def stop(self) -> Summary:
        self._stop.set()
        self._thread.join(timeout=30)
        samples = self.samples
        seen: dict[str, float] = {}
        for sample in samples:
            for problem in sample.problems:
                seen.setdefault(problem, sample.at)
        longest = 0.0
        gap_start: float | None = None
        for sample in samples:
            if not sample.active:
                gap_start = sample.at if gap_start is None else gap_start
                longest = max(longest, sample.at - gap_start)
            else:
                gap_start = None
        return Summary(
            samples=len(samples),
            seconds=samples[-1].at if samples else 0.0,
            min_ready_pods=min((s.ready_pods for s in samples), default=0),
            max_active=max((len(s.active) for s in samples), default=0),
            longest_without_active=longest,
            problems=[f"{p} (at {t:.1f}s)" for p, t in seen.items()],
            errors=list(self.errors),
        )


@contextlib.contextmanager
def watching(*, release_namespace: str, selector: str, team: Team) -> Iterator[Watcher]:
    """Sample from entry to exit; `.stop()` is called on exit and its Summary kept in
    `watcher.summary`."""
    watcher = Watcher(release_namespace=release_namespace, selector=selector, team=team)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.summary = watcher.stop()
