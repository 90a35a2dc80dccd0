"""The built-in providers pass the conformance kit (secretsync.testing), against the real
services, exactly as a plug-in package passes it against its own.

Each target (tests/harness/targets/) seeds its service and hands over a backend and login
material; the kit's cases read through the SecretsClient protocol only, as the engine
does, and skip (with the reason) what a target's capabilities say it cannot do. Targets
are looked up by name when a case runs, so a target module that does not exist yet fails
its cases rather than hiding them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

from harness.devenv import DevEnv
from secretsync.testing import ConformanceTarget, ProviderConformance

pytestmark = pytest.mark.integration

TARGETS = ["aws-secretsmanager", "aws-parameterstore", "vault-kv2", "vault-kv1", "sops-age"]


@pytest.fixture(scope="session")
def conformance_targets(env: DevEnv) -> Callable[[str], ConformanceTarget]:
    """Look a target up by name, importing its harness module on first use."""
    loaded: dict[str, dict[str, ConformanceTarget]] = {}

    def lookup(name: str) -> ConformanceTarget:
        module_name = f"harness.targets.{name.split('-', 1)[0]}"
        if module_name not in loaded:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                pytest.fail(f"{module_name} does not exist: target {name} has no implementation")
            loaded[module_name] = {t.name: t for t in module.targets(env)}
        by_name = loaded[module_name]
        if name not in by_name:
            pytest.fail(f"{module_name}.targets() offers {sorted(by_name)}, not {name}")
        return by_name[name]

    return lookup


@pytest.fixture(params=TARGETS)
def secretsync_provider(
    request: pytest.FixtureRequest, conformance_targets: Callable[[str], ConformanceTarget]
) -> ConformanceTarget:
    """The target the kit's cases run against (the kit's fixture name)."""
    return conformance_targets(str(request.param))


class TestBuiltInProviders(ProviderConformance):
    """Every case of the kit, against each built-in target."""
