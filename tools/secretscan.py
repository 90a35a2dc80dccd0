"""The repository's own secret scan (`make secret-scan`, .ci/run): detect-secrets over
every file Git tracks (and new files not ignored), against the reviewed baseline
`.secrets.baseline`.

It fails on
- a finding the baseline does not hold (a new secret, or a new false positive to review);
- a baseline entry nobody reviewed (`is_secret` unset) or one marked a real secret.

A finding is matched on (file, detector, hashed secret), not its line, so edits around it
do not count as new. `--update` rewrites the baseline from a scan, keeping the review of
every entry still found; new entries are left unreviewed, for a person to review with
`.venv/bin/detect-secrets audit .secrets.baseline` (each one: is this a secret? no).
Nothing here prints a matched value: detect-secrets stores only hashes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / ".secrets.baseline"
# Generated benchmark figures hold source hashes that change with every run; the baseline
# holds hashes of what it lists.
EXCLUDE_FILES = r"^(bench/results[^/]*\.json|\.secrets\.baseline)$"

Key = tuple[str, str, str]


def files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({f for f in out.decode().split("\0") if f and (REPO / f).is_file()})


def scan() -> dict[str, Any]:
    """detect-secrets' scan of the files, as its baseline JSON."""
    tool = Path(sys.executable).parent / "detect-secrets"
    proc = subprocess.run(
        [str(tool), "scan", "--exclude-files", EXCLUDE_FILES, *files()],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"secretscan: detect-secrets failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def entries(doc: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {
        (name, e["type"], e["hashed_secret"]): e
        for name, found in doc.get("results", {}).items()
        for e in found
    }


def check(found: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """What is wrong, one line each (empty: the tree is clean)."""
    known = entries(baseline)
    problems = [
        f"{name}:{e['line_number']}: {kind}: new (not in {BASELINE.name})"
        for (name, kind, digest), e in sorted(entries(found).items())
        if (name, kind, digest) not in known
    ]
    for (name, kind, _), e in sorted(known.items()):
        if e.get("is_secret") is None:
            problems.append(f"{name}:{e['line_number']}: {kind}: in the baseline, not reviewed")
        elif e["is_secret"]:
            problems.append(f"{name}:{e['line_number']}: {kind}: reviewed as a real secret")
    return problems


def update(found: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The scan as the new baseline, each entry keeping its review if it had one."""
    known = entries(baseline)
    for name, found_entries in found["results"].items():
        for e in found_entries:
            before = known.get((name, e["type"], e["hashed_secret"]))
            if before is not None and "is_secret" in before:
                e["is_secret"] = before["is_secret"]
    found.pop("generated_at", None)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline from a scan")
    args = parser.parse_args(argv)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {"results": {}}
    found = scan()
    if args.update:
        BASELINE.write_text(json.dumps(update(found, baseline), indent=2) + "\n")
    problems = check(found, json.loads(BASELINE.read_text()) if args.update else baseline)
    scanned = len(files())
    if problems:
        lines = [f"secretscan: {scanned} files, {len(problems)} problem(s):"]
        lines += [f"  {line}" for line in problems]
        lines.append(
            "A secret: remove it from the tree (and rotate it). A false positive: "
            "`python tools/secretscan.py --update`, then review the new entries with "
            f"`detect-secrets audit {BASELINE.name}`."
        )
        sys.stderr.write("\n".join(lines) + "\n")
        return 1
    reviewed = len(entries(json.loads(BASELINE.read_text())))
    sys.stdout.write(f"secretscan: {scanned} files clean ({reviewed} reviewed false positives)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
