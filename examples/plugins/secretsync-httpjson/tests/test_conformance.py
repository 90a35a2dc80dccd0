"""secretsync's provider conformance kit, against the reference server."""

from __future__ import annotations

from secretsync.testing import ProviderConformance


class TestHttpJsonConformance(ProviderConformance):
    """Every case of the kit (the `secretsync_provider` fixture is in conftest.py)."""
