"""Provider conformance targets for the built-in providers: one per backend, each able to
seed the real service (moto, OpenBao) and hand the kit a backend plus login material.

The protocol is the kit's own (secretsync.testing.ConformanceTarget), so the built-ins are
held to exactly what a plug-in package is: tests/integration/test_provider_conformance.py
runs secretsync.testing.ProviderConformance against every target here.
"""

from __future__ import annotations

from secretsync.testing import Capabilities, ConformanceTarget

__all__ = ["Capabilities", "ConformanceTarget"]
