"""Logging set-up: text for people, JSON lines for log pipelines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from secretsync.config import LogFormat

AUDIT_LOGGER = "secretsync.audit"

# Libraries whose debug output includes request and response bodies (botocore logs
# GetSecretValue responses, the Kubernetes client and urllib3 log Secret payloads,
# hvac logs KV reads). They never log below WARNING, whatever --log-level says: no
# secret value may reach a log at any level.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "hvac", "kubernetes", "requests")


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the fields log pipelines index."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception text from SDKs could quote a value.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure(*, log_format: LogFormat, level: str) -> None:
    """Route every logger (kopf's too) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # kopf logs a line per watch event ("Handler ... succeeded"): about 5 % of the CPU at
    # scale (docs/benchmarks.md). Kept for --log-level debug only.
    if root.level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
