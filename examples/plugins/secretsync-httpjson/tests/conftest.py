"""The reference server, started in this process for the session, and a conformance
target over it: the kit (secretsync.testing) reads through the installed plug-in exactly as
the operator would, and seeds through the server's admin API."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator, Mapping

import pytest
from secretsync_httpjson.server import Admin, ServerConfig, StaticTokens, serve

from secretsync.providers.base import Backend, LoginMaterial
from secretsync.testing import CallBudget, Capabilities, ConformanceTarget, backend_for_plugin

READER = "reader"  # the subject the conformance identity stands for
READABLE = "conformance/"  # what READER may read


class HttpJsonTarget:
    """The reference server, read as a subject allowed READABLE only."""

    name = "httpjson"
    capabilities = Capabilities(
        binary=True,
        versions=True,
        find=True,
        find_tags=False,  # the service keeps no tags: a find by tags is refused
        fetch_batch=CallBudget(operation="read", per_call=100),
        versions_batch=CallBudget(operation="versions", per_call=100),
    )

    def __init__(self, admin: Admin, reader_token: str) -> None:
        self._admin = admin
        self._reader_token = reader_token

    def backend(self) -> Backend:
        # Through the entry point, as the operator builds it: proves the package registers.
        return backend_for_plugin("httpjson", {"url": self._admin.url}, service_account=READER)

    def material(self) -> LoginMaterial:
        return LoginMaterial(service_account_token=self._reader_token)

    def prefix(self) -> str:
        return f"{READABLE}{uuid.uuid4().hex[:12]}/"

    def put(self, key: str, value: str | bytes) -> None:
        self._admin.put(key, value)

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self._admin.put(key, json.dumps(dict(value)))

    def stored_bytes(self, value: str) -> bytes:
        return value.encode()  # a value store: what was put comes back

    def denied_key(self) -> str | None:
        # A real secret beside READABLE: the server, not the test, must refuse it.
        key = f"forbidden/{uuid.uuid4().hex[:12]}"
        self._admin.put(key, f"not-for-this-identity-{uuid.uuid4().hex}")
        return key


@pytest.fixture(scope="session")
def reader_token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def admin(reader_token: str) -> Iterator[Admin]:
    """The reference server on a free loopback port, for the session; its admin client."""
    admin_token = secrets.token_urlsafe(24)
    config = ServerConfig(
        admin_token=admin_token,
        authenticator=StaticTokens({reader_token: READER}),
        allow={READER: (READABLE,)},
    )
    running = serve(config)
    try:
        yield Admin(running.url, admin_token)
    finally:
        running.close()


@pytest.fixture
def secretsync_provider(admin: Admin, reader_token: str) -> ConformanceTarget:
    """The target the kit's cases run against (the kit's fixture name)."""
    return HttpJsonTarget(admin, reader_token)
