"""Literal secrets in text, found with detect-secrets' plug-ins.

detect-secrets scans files line by line; a value from the API is presented to it as the
line a manifest or a config file would hold (`NAME: "value"` for an environment
variable, the file's own lines for a ConfigMap key named like a file), so its keyword
rules, entropy limits and false-positive filters apply as they do on a repository.
Only the names of the detectors that fired leave this module, never what they matched.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence

from detect_secrets.core import scan
from detect_secrets.settings import default_settings

# Public IPv4 addresses are configuration, not credentials: every Service URL would match.
DISABLED = ("IPPublicDetector",)
KEYWORD = "Secret Keyword"
# A keyword hit on one of these is a setting about secrets (`REQUIRE_PASSWORD: "false"`,
# `PASSWORD_POLICY: strong`), not a secret.
SETTINGS = frozenset(
    (
        *("true", "false", "yes", "no", "on", "off", "enabled", "disabled", "enable"),
        *("disable", "required", "optional", "none", "null", "auto", "always", "never"),
        *("strong", "weak"),
    )
)
# `KEY=value` lines of a dotenv file (`export` allowed), scanned as the assignments they are.
DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")


@contextlib.contextmanager
def detectors() -> Iterator[None]:
    """detect-secrets' default plug-ins and filters, for the duration of a scan (its
    settings are process-wide)."""
    with default_settings() as settings:
        settings.disable_plugins(*DISABLED)
        yield


def in_lines(lines: Sequence[str], filename: str) -> list[str]:
    """The detectors that fire on any of the lines, sorted; call inside `detectors()`.

    The filename matters as it does on disk: detect-secrets picks its keyword rules by
    the extension (".properties", ".yaml", ".py"...)."""
    numbered = list(enumerate(lines, start=1))
    # detect-secrets 1.5 exposes per-line scanning only through this function (its public
    # scan_line turns the entropy limits off); the version is pinned in constraints.txt.
    found = scan._process_line_based_plugins(numbered, filename=filename)
    return sorted({secret.type for secret in found})


def in_assignment(name: str, value: str) -> list[str]:
    """Detectors that fire on `name: "value"`, as a manifest would spell it."""
    found = in_lines([f"{name}: {json.dumps(value)}"], "manifest.yaml")
    if found == [KEYWORD] and _setting(value):
        return []
    return found


def _setting(value: str) -> bool:
    return value.strip().lower() in SETTINGS or (value.isdigit() and len(value) <= 3)


def in_argument(value: str) -> list[str]:
    """Detectors that fire on one command-line word, as a manifest list item would hold
    it (`--password=...`, a URL with credentials, a key)."""
    return in_lines([f"- {json.dumps(value)}"], "manifest.yaml")


def in_file(name: str, text: str) -> list[str]:
    """Detectors that fire on a file's text (a ConfigMap key named like a file); a
    value without a file name is scanned as an assignment to its key, and a dotenv file
    (`.env`, `app.env`, or no extension with `KEY=value` lines) line by line as
    assignments, which detect-secrets' own rules for unknown files would miss."""
    lines = text.splitlines()
    if "." not in name and len(lines) <= 1:
        return in_assignment(name, text)
    pairs = [m.groups() for m in map(DOTENV_LINE.match, lines) if m]
    if name.endswith(".env") or ("." not in name and pairs):
        return sorted({d for key, value in pairs for d in in_assignment(key, _unquoted(value))})
    return in_lines(lines, name)


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
