"""JSON logs carry structured fields but never exception text (SDK messages may quote values)."""

from __future__ import annotations

import json
import logging
import sys

from secretsync.logs import JsonFormatter


def test_json_lines_carry_fields_and_only_the_exception_type() -> None:
    try:
        raise ValueError("s3cr3t-value-from-an-sdk")
    except ValueError:
        record = logging.LogRecord(
            "secretsync",
            logging.ERROR,
            __file__,
            1,
            "sync of %s failed",
            ("team-a/db",),
            sys.exc_info(),
        )
    record.fields = {"secretsync": "team-a/db"}
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "sync of team-a/db failed"
    assert entry["secretsync"] == "team-a/db"
    assert entry["exception"] == "ValueError"
    assert "s3cr3t" not in line
