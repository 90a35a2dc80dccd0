"""What the conformance kit cannot say about this plug-in: its config is checked with
clear messages, and its login needs a token the service accepts."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time

import pytest
from secretsync_httpjson.server import Admin, ServerConfig, StaticTokens, serve

from secretsync.errors import ProviderAuthError, ProviderConfigError
from secretsync.providers.base import LoginMaterial
from secretsync.testing import backend_for_plugin


def test_a_config_without_a_url_names_the_field() -> None:
    with pytest.raises(ProviderConfigError, match=r"spec\.provider\.plugin\.config\.url"):
        backend_for_plugin("httpjson", {})


def test_an_unknown_config_field_is_named() -> None:
    with pytest.raises(ProviderConfigError, match="timeout"):
        backend_for_plugin("httpjson", {"url": "http://127.0.0.1:1", "timeout": 5})


def test_a_store_without_a_service_account_cannot_log_in() -> None:
    backend = backend_for_plugin("httpjson", {"url": "http://127.0.0.1:1"})

    with pytest.raises(ProviderConfigError, match="serviceAccount"):
        asyncio.run(backend.login(LoginMaterial()))


def test_a_token_the_service_does_not_know_is_an_auth_error(admin: Admin) -> None:
    backend = backend_for_plugin("httpjson", {"url": admin.url}, service_account="reader")
    unknown = secrets.token_urlsafe(24)

    with pytest.raises(ProviderAuthError) as refused:
        asyncio.run(backend.login(LoginMaterial(service_account_token=unknown)))

    assert "401" in str(refused.value)
    assert unknown not in str(refused.value)


def test_a_session_ends_when_its_token_does() -> None:
    exp = int(time.time()) + 600
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    token = f"eyJhbGciOiJSUzI1NiJ9.{claims}.c2lnbmF0dXJl"  # JWT-shaped; the server only looks it up
    running = serve(
        ServerConfig(
            admin_token=secrets.token_urlsafe(24),
            authenticator=StaticTokens({token: "a"}),
            allow={},
        )
    )
    try:
        backend = backend_for_plugin("httpjson", {"url": running.url}, service_account="a")
        session = asyncio.run(backend.login(LoginMaterial(service_account_token=token)))
    finally:
        running.close()

    assert session.identity == "httpjson:a"
    assert session.expires_at == exp
