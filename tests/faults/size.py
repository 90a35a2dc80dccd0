"""How big the fault suite runs: `SECRETSYNC_FAULTS=full` (`make faults`) at full size and
length, else (`make test`, CI) a subset that fits CI's time."""

from __future__ import annotations

import os

FULL = os.environ.get("SECRETSYNC_FAULTS") == "full"
SIZE = "full" if FULL else "ci"
