"""The pytest plug-in of the conformance kit, registered as `secretsync` (entry-point
group pytest11), so it loads wherever secretsync and pytest are installed together.

It provides the `secretsync_target` fixture that ProviderConformance's cases use (built
from the `secretsync_provider` fixture a provider's author writes), fails a case whose
logs or error texts hold a seeded value, registers the `secretsync_conformance` marker,
and names the installed providers in pytest's report header.

With PYTEST_DISABLE_PLUGIN_AUTOLOAD set, load it with `-p secretsync`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from secretsync.providers import registry
from secretsync.testing.kit import CheckedTarget, LogWatch
from secretsync.testing.target import ConformanceTarget

MARKER = "secretsync_conformance"
_CHECKED = pytest.StashKey[CheckedTarget]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a case of secretsync's provider conformance kit (secretsync.testing)"
    )


def pytest_report_header(config: pytest.Config) -> str:
    names = ", ".join(sorted(registry.installed())) or "none"
    return f"secretsync providers installed (entry-point group {registry.GROUP}): {names}"


@pytest.fixture
def secretsync_target(
    request: pytest.FixtureRequest, secretsync_provider: ConformanceTarget
) -> Iterator[CheckedTarget]:
    """The author's `secretsync_provider` target, with every log record of the case
    watched at DEBUG and every seeded value remembered for the leak check."""
    watch = LogWatch()
    with watch.installed():
        checked = CheckedTarget(secretsync_provider, watch)
        request.node.stash[_CHECKED] = checked
        yield checked


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a case passed, fail it if a seeded value (or the login's credential) reached
    a log record or the text of an error the backend returned or raised."""
    result = yield
    checked = item.stash.get(_CHECKED, None)
    if checked is not None:
        leaks = checked.leaks()
        if leaks:
            pytest.fail("secret values leaked:\n" + "\n".join(leaks), pytrace=False)
    return result
