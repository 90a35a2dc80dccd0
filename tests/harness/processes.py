"""Starting, waiting for and stopping the environment's programs.

Each program runs in its own session (so it survives `make devenv-up`
returning, and a signal reaches its children), writes its log into the run
folder, and is recorded with its start time so that teardown stops exactly
the processes this harness started, never a later process that reused a pid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 60


class EnvError(RuntimeError):
    """A component of the environment failed to start or answer."""


def free_port() -> int:
    """A port that was free a moment ago on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after its ')' are plain.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, waiting to be reaped: not running any more
        return None
    return fields[19]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Started:
    """One program the harness started."""

    name: str
    pid: int
    start_time: str
    log: Path

    def alive(self) -> bool:
        """Whether this very process (not a pid reuse) is still running."""
        return _start_time(self.pid) == self.start_time


class Processes:
    """The programs of one environment, in start order."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[Started] = []
        self._popen: dict[int, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> Started:
        """Start a program in the background with its output in <run_dir>/<name>.log."""
        log = self.run_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=self.run_dir,
                start_new_session=True,
            )
        started = Started(name=name, pid=proc.pid, start_time=_start_time(proc.pid) or "", log=log)
        self.started.append(started)
        self._popen[proc.pid] = proc
        self.save()
        return started

    def wait_ready(
        self, started: Started, probe: Callable[[], bool], *, timeout: float, what: str
    ) -> None:
        """Poll the probe until it says yes; fail with the program's log if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not started.alive() or self._exited(started):
                raise EnvError(
                    f"{started.name} exited before {what}; its log ({started.log}):\n"
                    + log_tail(started.log)
                )
            with contextlib.suppress(Exception):
                if probe():
                    return
            time.sleep(0.25)
        raise EnvError(
            f"{started.name} did not get {what} within {timeout:.0f}s; its log ({started.log}):\n"
            + log_tail(started.log)
        )

    def _exited(self, started: Started) -> bool:
        proc = self._popen.get(started.pid)
        return proc is not None and proc.poll() is not None

    def stop_all(self, *, grace: float = 10.0) -> None:
        """Stop every program, newest first: SIGTERM, then SIGKILL after the grace period."""
        for started in reversed(self.started):
            stop(started, grace=grace)
            proc = self._popen.pop(started.pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
        self.started.clear()
        self.save()

    # The record that lets another process (`make devenv-down`) stop them.
    def save(self) -> None:
        records = [
            {"name": s.name, "pid": s.pid, "start_time": s.start_time, "log": str(s.log)}
            for s in self.started
        ]
        (self.run_dir / "processes.json").write_text(json.dumps(records, indent=1))

    @classmethod
    def load(cls, run_dir: Path) -> Processes:
        procs = cls(run_dir)
        path = run_dir / "processes.json"
        if path.exists():
            for r in json.loads(path.read_text()):
                procs.started.append(
                    Started(
                        name=r["name"], pid=r["pid"], start_time=r["start_time"], log=Path(r["log"])
                    )
                )
        return procs


def stop(started: Started, *, grace: float) -> None:
    """Stop one program and its session if it is still the process we started."""
    if not started.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(started.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and started.alive():
        time.sleep(0.1)
        _reap(started.pid)
    if started.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.pid, signal.SIGKILL)
        for _ in range(50):
            _reap(started.pid)
            if not started.alive():
                break
            time.sleep(0.1)


def _reap(pid: int) -> None:
    # A child of ours stays a zombie (and "alive" in /proc) until waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def http_ok(
    url: str, *, context: ssl.SSLContext | None = None, headers: Mapping[str, str] | None = None
) -> bool:
    """Whether a GET of the URL answers 2xx."""
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False
