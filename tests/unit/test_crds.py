"""crds/ is what tools/crds.py generates, and its schemas are well-formed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_crds_in_the_repository_match_the_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "crds.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_short_names_do_not_collide_with_external_secrets_operator() -> None:
    # ESO's: es, ss, css, ces, pushsecret, cps; a user with both installed must reach each.
    eso = {"es", "ss", "css", "ces", "ps", "cps", "ess"}
    for path in sorted((REPO / "crds").glob("*.yaml")):
        names = yaml.safe_load(path.read_text())["spec"]["names"]
        assert not set(names["shortNames"]) & eso, path.name
