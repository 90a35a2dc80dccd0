"""CPU and memory of processes, sampled from /proc every half second (psutil)."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import threading
import time
from collections.abc import Mapping
from typing import Any

import psutil

INTERVAL = 0.5


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.time()
    rss: int  # bytes
    cpu: float  # user + system seconds since the process started


class Monitor:
    """Samples named processes in a background thread until stopped."""

    def __init__(self, pids: Mapping[str, int], *, interval: float = INTERVAL) -> None:
        self.pids = dict(pids)
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._samples: dict[str, list[Sample]] = {name: [] for name in [*pids, "machine"]}
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self._interval):
                return

    def sample(self) -> None:
        """Take one sample of every process now (also called at window edges), and of the
        whole machine's busy CPU time (under the name "machine")."""
        now = time.time()
        total = psutil.cpu_times()
        busy = total.user + total.nice + total.system + total.irq + total.softirq + total.steal
        with self._lock:
            self._samples["machine"].append(Sample(now, 0, busy))
        for name, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                rss = proc.memory_info().rss
                with self._lock:
                    self._samples[name].append(Sample(now, rss, times.user + times.system))

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def samples(self, name: str, start: float = 0.0, end: float = float("inf")) -> list[Sample]:
        with self._lock:
            series = list(self._samples[name])
        return [s for s in series if start <= s.at <= end]

    def cpu(self, name: str, start: float, end: float) -> float:
        """CPU seconds the process used between two times (nearest samples inside)."""
        with self._lock:
            series = list(self._samples[name])
        if not series:
            return 0.0
        times = [s.at for s in series]
        i = min(bisect.bisect_left(times, start), len(series) - 1)
        j = max(bisect.bisect_right(times, end) - 1, 0)
        return max(0.0, series[j].cpu - series[i].cpu)

    def peak_rss(self, name: str, start: float = 0.0, end: float = float("inf")) -> int:
        return max((s.rss for s in self.samples(name, start, end)), default=0)

    def last_rss(self, name: str) -> int:
        series = self.samples(name)
        return series[-1].rss if series else 0

    def names(self) -> list[str]:
        return list(self._procs)

    def series(self, name: str, origin: float) -> dict[str, Any]:
        """The samples as plain lists, times relative to origin, for results.json."""
        samples = self.samples(name)
        return {
            "t": [round(s.at - origin, 2) for s in samples],
            "rss_mib": [round(s.rss / 2**20, 1) for s in samples],
            "cpu_s": [round(s.cpu, 2) for s in samples],
        }
