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
from collections.abc import Callable, Iterator
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


# What the operator spends its CPU on, by stack content (inclusive, so rows overlap).
ACTIVITIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("Kubernetes API calls (kube/ worker threads)", lambda s: "kubernetes/client/api" in s),
    ("  read a Secret (GET)", lambda s: "read_namespaced_secret" in s),
    ("  create a Secret", lambda s: "create_namespaced_secret" in s),
    ("  patch a status", lambda s: "patch_namespaced_custom_object_status" in s),
    ("  post an Event", lambda s: "create_namespaced_event" in s),
    (
        "  open a new TLS connection",
        lambda s: "_new_conn" in s or "HTTPSConnection.connect" in s or "ssl_wrap_socket" in s,
    ),
    ("logging", lambda s: "Logger._log" in s),
    ("  audit records (secretsync.audit)", lambda s: "audit.py" in s and "Logger._log" in s),
    ("  kopf's per-event INFO lines", lambda s: "kopf" in s and "Logger._log" in s),
    ("kopf event processing", lambda s: "process_resource_event" in s),
    ("secretsync engine (own frames and below)", lambda s: "secretsync/engine" in s),
    ("botocore (provider calls)", lambda s: "botocore" in s),
    ("event-loop wake-ups from worker threads", lambda s: "_write_to_self" in s),
    ("pydantic validation", lambda s: "model_validate" in s),
)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.profile FILE.collapsed`: print the summary of a raw py-spy profile."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("collapsed", type=Path)
    args = parser.parse_args(argv)
    sys.stdout.write(summarise(args.collapsed.read_text()))
    return 0


def summarise(collapsed: str, top: int = 40) -> str:
    """Self and inclusive shares of the sampled (non-idle) time, by function and by file."""
    activities: collections.Counter[str] = collections.Counter()
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
        for name, matches in ACTIVITIES:
            if matches(stack):
                activities[name] += count
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
    lines += ["## by activity (inclusive; indented rows are part of the row above)", ""]
    lines += [f"{100 * activities[name] / total:6.1f}%  {name}" for name, _ in ACTIVITIES]
    lines += [""]
    lines += table("self time by file", by_file)
    lines += table("self time by function", self_time)
    lines += table("inclusive time by function", inclusive)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
