"""Sampling profiles of the operator process with py-spy (attached by pid, non-blocking),
summarised as the functions that hold the CPU."""

from __future__ import annotations

import collections
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("bench.profile")
RATE = 50  # samples per second


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, out: Path) -> Iterator[None]:
    """Record collapsed stacks of the process into out (.txt) while the block runs, and
    write a summary beside it (.summary.txt)."""
    tool = _py_spy()
    if tool is None:
        log.warning("py-spy is not installed; no profile for %s", out.name)
        yield
        return
    raw = out.with_suffix(".collapsed")
    proc = subprocess.Popen(
        [
            *(tool, "record", "--pid", str(pid), "--rate", str(RATE)),
            *("--nonblocking", "--format", "raw", "--output", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if raw.exists():
            out.write_text(summarise(raw.read_text()))
            log.info("profile written to %s", out)
        else:
            log.warning("py-spy wrote no profile: %s", err.decode(errors="replace")[-500:])


def _function(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/module.py:line)"; keep function and file.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "operator/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def summarise(collapsed: str, top: int = 40) -> str:
    """Self and inclusive shares of the sampled (non-idle) time, by function and by file."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        by_file[frames[-1].split(" (", 1)[1].rstrip(")")] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples\n"

    def table(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [f"## {title}", ""]
        for name, n in counter.most_common(top):
            rows.append(f"{100 * n / total:6.1f}%  {name}")
        return [*rows, ""]

    lines = [f"# {total} samples at {RATE}/s of CPU-active stacks (idle excluded)", ""]
    lines += table("self time by file", by_file)
    lines += table("self time by function", self_time)
    lines += table("inclusive time by function", inclusive)
    return "\n".join(lines)
