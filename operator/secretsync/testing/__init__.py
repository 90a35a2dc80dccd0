"""secretsync's provider conformance kit, for pytest: the cases every provider backend
passes, built in or installed as a plug-in package (docs/providers/plugins.md).

    from secretsync.testing import Capabilities, ConformanceTarget, ProviderConformance

    @pytest.fixture
    def secretsync_provider() -> ConformanceTarget:
        return MyTarget(...)        # builds the backend, seeds the service

    class TestMyProvider(ProviderConformance):
        pass

The kit's pytest plug-in (`secretsync.testing.plugin`, entry point `secretsync` of the
group pytest11) loads by itself where secretsync and pytest are installed together.
Nothing in the operator imports this package; it needs pytest, which the operator's image
does not hold (`pip install 'secretsync[testing]'`).
"""

from __future__ import annotations

try:
    import pytest
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "secretsync.testing is a pytest kit and pytest is not installed: "
        "pip install 'secretsync[testing]'",
        name=exc.name,
    ) from exc

# The cases' asserts explain themselves, as in the author's own test modules.
pytest.register_assert_rewrite("secretsync.testing.conformance")

# After the check above, so that a missing pytest is reported with its remedy.
from secretsync.testing.conformance import ProviderConformance  # noqa: E402
from secretsync.testing.kit import CheckedTarget, RecordingGate, backend_for_plugin  # noqa: E402
from secretsync.testing.target import (  # noqa: E402
    CallBudget,
    Capabilities,
    ConformanceTarget,
    TaggingTarget,
)

__all__ = [
    "CallBudget",
    "Capabilities",
    "CheckedTarget",
    "ConformanceTarget",
    "ProviderConformance",
    "RecordingGate",
    "TaggingTarget",
    "backend_for_plugin",
]
