"""What happens to the operator and to its SecretSyncs while something disrupts it (a
`helm upgrade`, a node drain): sampled twice a second in a thread, from the host.

Each sample counts the operator Pods that are Ready, asks each Pod its role (/healthz,
harness/pods.py), and (given a team) checks that every SecretSync of the team is
Ready=True and that its Secret holds the expected bytes. The summary gives the worst.
Besides, the Pods' logs are followed (harness/podlogs.py) for when each engine really
acted, which sampling can only approximate.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes

from harness import podlogs, pods, scenario
from harness.devenv import DevEnv
from harness.teams import Team

INTERVAL = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    at: float  # seconds since the watch began
    ready_pods: int
    active: tuple[str, ...]  # the Pods that said they act ("(terminating)" appended if so)
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
    # The samples in which more than one Pod said it was active.
    overlaps: list[str]
    # From the Pods' logs: each stretch in which two engines acted at once.
    engine_overlaps: list[str]
    errors: list[str]  # samples that could not be taken (API errors), at most a few

    def describe(self) -> str:
        return (
            f"{self.samples} samples over {self.seconds:.1f}s: min Ready operator Pods "
            f"{self.min_ready_pods}, max active {self.max_active}, longest without an active "
            f"replica {self.longest_without_active:.1f}s, problems {self.problems or 'none'}"
            f", more than one active: {self.overlaps or 'never'}, engines acting at once "
            f"(from the logs): {self.engine_overlaps or 'never'}"
        )


class Watcher:
    def __init__(
        self,
        *,
        env: DevEnv,
        release_namespace: str,
        selector: str,
        team: Team | None,
        logs: Path,
    ) -> None:
        self._namespace = release_namespace
        self._selector = selector
        self._team = team
        # The SecretSyncs to check: those that exist when the watch begins.
        self._expected = dict(team.expected) if team else {}
        # A client of its own: the test's thread uses the other one meanwhile.
        self._api = env.api_client()
        self._logs = podlogs.Follower(
            env, namespace=release_namespace, selector=selector, folder=logs
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.summary: Summary | None = None  # set when the watch ends
        self._begun = 0.0
        self._since = datetime.datetime.now(datetime.UTC)

    def _sample(self) -> Sample:
        at = time.monotonic() - self._begun
        listed = pods.list_pods(self._api, self._namespace, self._selector)
        ready = sum(1 for p in listed if p.ready and not p.terminating)
        # All Pods at once: asked one after the other, two answers could straddle a
        # hand-over and look like two active replicas.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(listed))) as pool:
            answers = list(pool.map(lambda p: pods.role(p.ip), listed))
        active = tuple(
            p.name + (" (terminating)" if p.terminating else "")
            for p, role in zip(listed, answers, strict=True)
            if role == "active"
        )
        problems = self._team_problems() if self._team else []
        return Sample(at=at, ready_pods=ready, active=active, problems=tuple(problems))

    def _team_problems(self) -> list[str]:
        assert self._team is not None
        problems = []
        custom = kubernetes.client.CustomObjectsApi(self._api)
        syncs: Any = custom.list_namespaced_custom_object(
            scenario.GROUP, scenario.VERSION, self._team.namespace, "secretsyncs"
        )
        items: list[dict[str, Any]] = syncs["items"]
        by_name = {o["metadata"]["name"]: o for o in items}
        for name, (target, data) in self._expected.items():
            cond = scenario.ready(by_name.get(name, {}))
            if cond is None or cond["status"] != "True":
                problems.append(f"SecretSync {name} not Ready ({cond and cond['reason']})")
            got = scenario.secret_data(self._api, self._team.namespace, target)
            if got is None:
                problems.append(f"Secret {target} missing")
            elif got != data:
                problems.append(f"Secret {target} holds other data")
        return problems

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
        self._since = datetime.datetime.now(datetime.UTC)
        self._logs.start()
        self._thread.start()

    def stop(self) -> Summary:
        self._stop.set()
        self._thread.join(timeout=30)
        self._logs.stop()
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
            overlaps=[f"{s.at:.1f}s: {', '.join(s.active)}" for s in samples if len(s.active) > 1],
            engine_overlaps=podlogs.overlaps(
                podlogs.engine_intervals(self._logs.folder), since=self._since
            ),
            errors=list(self.errors),
        )


@contextlib.contextmanager
def watching(
    env: DevEnv,
    *,
    release_namespace: str,
    selector: str,
    logs: Path,
    team: Team | None = None,
) -> Iterator[Watcher]:
    """Sample from entry to exit, following the Pods' logs into the folder `logs`;
    `.stop()` is called on exit and its Summary kept in `watcher.summary`."""
    watcher = Watcher(
        env=env, release_namespace=release_namespace, selector=selector, team=team, logs=logs
    )
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.summary = watcher.stop()
