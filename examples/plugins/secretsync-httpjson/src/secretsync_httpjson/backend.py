"""HttpJsonBackend: the factory secretsync calls for `spec.provider.plugin.name: httpjson`.

    spec:
      provider:
        plugin:
          name: httpjson
          serviceAccount: {name: team-a-sync}      # audiences default to [httpjson]
          config:
            url: https://secrets.example.internal
            caBundle: <PEM text>                   # optional, for an https url
            timeoutSeconds: 10                     # optional

The backend presents the ServiceAccount's TokenRequest token as a bearer token, so the
service sees each namespace as itself and its own policy decides what it may read.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from secretsync.errors import ProviderAuthError, ProviderConfigError
from secretsync.models.remote import CallGate
from secretsync.models.store import PluginProvider
from secretsync.providers.base import LoginMaterial, SecretsClient, Session
from secretsync_httpjson.client import HttpJsonClient, Transport

NAME = "httpjson"
FIELD = "spec.provider.plugin.config"
DEFAULT_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """spec.provider.plugin.config, checked."""

    url: str
    ca_bundle: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> Settings:
        unknown = sorted(set(config) - {"url", "caBundle", "timeoutSeconds"})
        if unknown:
            raise ProviderConfigError(
                f"{FIELD}: unknown field(s) {', '.join(unknown)}; "
                "httpjson knows url, caBundle and timeoutSeconds"
            )
        url = config.get("url")
        parts = urllib.parse.urlsplit(url if isinstance(url, str) else "")
        if not isinstance(url, str) or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderConfigError(f"{FIELD}.url: set the service's http(s):// URL")
        ca_bundle = config.get("caBundle")
        if ca_bundle is not None and not (
            isinstance(ca_bundle, str) and "-----BEGIN CERTIFICATE-----" in ca_bundle
        ):
            raise ProviderConfigError(f"{FIELD}.caBundle: give PEM certificates as text")
        timeout = config.get("timeoutSeconds", DEFAULT_TIMEOUT)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 1 <= timeout <= 300
        ):
            raise ProviderConfigError(f"{FIELD}.timeoutSeconds: a number of seconds, 1 to 300")
        return cls(url=url.rstrip("/"), ca_bundle=ca_bundle, timeout_seconds=float(timeout))

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_bundle is None:
            return None
        return ssl.create_default_context(cadata=self.ca_bundle)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A session's bearer token (the ServiceAccount's TokenRequest token)."""

    token: str = dataclasses.field(repr=False)


def _expiry(token: str) -> float | None:
    """The token's `exp` claim, so the engine logs in again before it runs out. Read, not
    verified: the service verifies the token; this only schedules the next login."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
    except (IndexError, ValueError, binascii.Error):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class HttpJsonBackend:
    """The httpjson provider of one store (the `secretsync.providers` entry point)."""

    name = NAME

    def __init__(self, section: PluginProvider) -> None:
        if not isinstance(section, PluginProvider):
            raise ProviderConfigError(
                "httpjson is a plug-in provider: configure it under spec.provider.plugin"
            )
        self._settings = Settings.parse(section.config)
        # Checked now, so a store whose CA cannot be read fails at once, not at login.
        try:
            self._settings.ssl_context()
        except ssl.SSLError:
            raise ProviderConfigError(f"{FIELD}.caBundle: no certificate could be read") from None

    @property
    def endpoint(self) -> str:
        return f"{NAME}:{self._settings.url}"

    async def login(self, material: LoginMaterial) -> Session:
        """Ask the service who the token is; a refused token is a ProviderAuthError."""
        token = material.service_account_token
        if not token:
            raise ProviderConfigError(
                "httpjson: set spec.provider.plugin.serviceAccount; the service "
                "authenticates ServiceAccount tokens"
            )
        async with Transport(
            self._settings.url,
            token,
            self._settings.ssl_context(),
            self._settings.timeout_seconds,
            gate=None,
        ) as transport:
            answer = await transport.call("whoami", "GET", "/v1/whoami")
        subject = answer.get("subject") if isinstance(answer, dict) else None
        if not isinstance(subject, str) or not subject:
            raise ProviderAuthError("httpjson: whoami named no subject for the token")
        return Session(
            identity=f"{NAME}:{subject}", expires_at=_expiry(token), credentials=Credentials(token)
        )

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        credentials = session.credentials
        if not isinstance(credentials, Credentials):
            raise ProviderConfigError(f"session {session.identity!r} was not made by httpjson")
        transport = Transport(
            self._settings.url,
            credentials.token,
            self._settings.ssl_context(),
            self._settings.timeout_seconds,
            gate=gate,
        )
        return HttpJsonClient(transport)
