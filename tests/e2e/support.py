"""What the end-to-end tests share besides fixtures: the long-run switch and the figures
they measure (printed past pytest's capture, and written to build/e2e/figures.json)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from harness import devenv

FULL = os.environ.get("SECRETSYNC_E2E") == "full"
FIGURES = devenv.REPO / "build" / "e2e" / "figures.json"


def report(config: pytest.Config, line: str) -> None:
    """Print a line past pytest's output capture, so that it shows in every run (CI's log
    included), not only with -s."""
    plugins = config.pluginmanager
    reporter: Any = plugins.get_plugin("terminalreporter")
    capture: Any = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"e2e: {line}")


class Figures:
    """What the tests measured: printed as they come, written to FIGURES at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self.values: dict[str, Any] = {}

    def record(self, name: str, value: Any, unit: str = "") -> None:
        self.values[name] = {"value": value, "unit": unit} if unit else value
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        report(self._config, f"{name}: {shown}{' ' + unit if unit else ''}")
