"""The audit trail: one structured record per read of a remote secret, on its own logger.

Records are JSON lines whatever the operator's log format, so a log pipeline
can route the `secretsync.audit` logger to long-term storage. They name the
SecretSync, the store, the identity, the remote key, the version and the
outcome; never a value.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from datetime import UTC, datetime

from secretsync.logs import AUDIT_LOGGER, JsonFormatter


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReadRecord:
    """One remote read, as the audit trail keeps it."""

    secretsync: str  # namespace/name
    store: str  # Kind/namespace/name
    identity: str  # e.g. the role ARN or Vault role; never a credential
    remote_key: str
    version: str | None
    outcome: str  # success | not_found | denied | auth_failed | unavailable | error


class AuditLog:
    """Writes read records to the `secretsync.audit` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)

    def read(self, record: ReadRecord) -> None:
        fields = {
            "event": "secret.read",
            "at": datetime.now(UTC).isoformat(),
            "secretsync": record.secretsync,
            "store": record.store,
            "identity": record.identity,
            "remoteKey": record.remote_key,
            "version": record.version,
            "outcome": record.outcome,
        }
        self._logger.info("secret read", extra={"fields": fields})


def configure(stream: object = None) -> None:
    """Audit records go to stderr as JSON lines, separately from the operator's log."""
    logger = logging.getLogger(AUDIT_LOGGER)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
