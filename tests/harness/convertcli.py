"""`secretsync convert` run in-process, as the unit and integration tests drive it."""

from __future__ import annotations

import io
from typing import IO, Any

import pytest
import yaml

from secretsync import __main__ as cli


def convert(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | IO[str] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    """The exit code, the YAML documents written to stdout, and stderr; stdin, when
    given, replaces sys.stdin (text, or a stream such as one that is not UTF-8)."""
    with pytest.MonkeyPatch.context() as patch:
        if stdin is not None:
            patch.setattr("sys.stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin)
        code = cli.main(["convert", *argv])
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d], err
