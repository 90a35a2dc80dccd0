"""Leased credentials from Vault: dynamic secrets (any engine that answers with a lease,
such as database/creds/<role>) and PKI certificates; their renewal and revocation.

Every call acts as one token: the engine logs in afresh for each issue and keeps that
token with the lease (docs/design/0010-leases.md), since Vault revokes a token's leases
when the token ends. Lease ids travel only in request bodies, never in a path, so no
error message (which names the path) can carry one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from secretsync.errors import ProviderConfigError, ProviderError
from secretsync.models.sync import Certificate, Dynamic
from secretsync.providers.base import Issued
from secretsync.providers.vault.kv import check_key
from secretsync.providers.vault.transport import Json, Transport, field_int, obj


def _text(value: object) -> bytes:
    """A response field as a Secret value: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _pem_chain(value: object) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def certificate_data(data: Json) -> dict[str, bytes]:
    """A PKI issue response as a kubernetes.io/tls Secret's keys: tls.crt is the
    certificate then the chain Vault returned (issuer first), ca.crt the top of that
    chain (the root, when Vault knows it), tls.key the private key."""
    certificate = data.get("certificate")
    key = data.get("private_key")
    if not isinstance(certificate, str) or not isinstance(key, str):
        raise ProviderError("vault: unexpected response: no certificate or private_key")
    chain = _pem_chain(data.get("ca_chain")) or _pem_chain(data.get("issuing_ca"))
    leaf = certificate.strip()
    chain = [c for c in chain if c != leaf]
    return {
        "tls.crt": ("\n".join([leaf, *chain]) + "\n").encode(),
        "tls.key": (key.strip() + "\n").encode(),
        "ca.crt": ((chain[-1] if chain else leaf) + "\n").encode(),
    }


def _certificate_body(request: Certificate) -> dict[str, object]:
    body: dict[str, object] = {"common_name": request.common_name}
    if request.alt_names:
        body["alt_names"] = ",".join(request.alt_names)
    if request.ip_sans:
        body["ip_sans"] = ",".join(request.ip_sans)
    if request.uri_sans:
        body["uri_sans"] = ",".join(request.uri_sans)
    if request.ttl:
        body["ttl"] = request.ttl
    return body


class VaultIssuer:
    """The LeaseIssuer of one Vault token."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def issue(self, request: Dynamic | Certificate) -> Issued:
        if isinstance(request, Certificate):
            return await self._certificate(request)
        path = check_key(request.path)
        if request.method == "POST":
            body = await self._transport.write("dynamic.issue", path, dict(request.parameters))
        else:
            body = await self._transport.get(
                "dynamic.issue", path, params=dict(request.parameters) or None
            )
        data = body.get("data")
        if not isinstance(data, Mapping) or not data:
            raise ProviderConfigError(
                f"vault: {path} answered without data: spec.dynamic.path must name an "
                "endpoint that issues credentials (such as database/creds/<role>)"
            )
        lease_id = body.get("lease_id")
        if not isinstance(lease_id, str) or not lease_id:
            raise ProviderConfigError(
                f"vault: {path} answered without a lease: it is not a dynamic secret "
                "(sync static values with spec.data instead)"
            )
        seconds = field_int(body, "lease_duration", 0)
        if seconds <= 0:
            raise ProviderConfigError(
                f"vault: {path} answered with a lease of no duration; secretsync keeps leases "
                "that end (check the engine's and the mount's TTLs)"
            )
        return Issued(
            data={str(k): _text(v) for k, v in data.items()},
            lease_id=lease_id,
            lease_seconds=seconds,
            renewable=body.get("renewable") is True,
        )

    async def _certificate(self, request: Certificate) -> Issued:
        mount = check_key(request.mount)
        path = f"{mount}/issue/{check_key(request.role)}"
        body = await self._transport.write("pki.issue", path, _certificate_body(request))
        data = obj(body.get("data"), "data")
        expiration = field_int(data, "expiration", 0)
        serial = data.get("serial_number")
        lease_id = body.get("lease_id")
        return Issued(
            data=certificate_data(data),
            lease_id=lease_id if isinstance(lease_id, str) else "",
            lease_seconds=max(expiration - int(time.time()), 0),
            renewable=False,
            not_after=float(expiration) if expiration else None,
            serial=serial if isinstance(serial, str) else None,
        )

    async def renew(self, lease_id: str, increment: int) -> int:
        body = await self._transport.write(
            "lease.renew", "sys/leases/renew", {"lease_id": lease_id, "increment": increment}
        )
        return field_int(body, "lease_duration", 0)

    async def renew_token(self, increment: int) -> int:
        body = await self._transport.write(
            "token.renew", "auth/token/renew-self", {"increment": increment}
        )
        return field_int(obj(body.get("auth"), "auth"), "lease_duration", 0)

    async def revoke_token(self) -> None:
        await self._transport.write("token.revoke", "auth/token/revoke-self", {})

    async def revoke_lease(self, lease_id: str) -> None:
        await self._transport.write("lease.revoke", "sys/leases/revoke", {"lease_id": lease_id})

    async def revoke_certificate(self, mount: str, serial: str) -> None:
        await self._transport.write(
            "pki.revoke", f"{check_key(mount)}/revoke", {"serial_number": serial}
        )

    async def close(self) -> None:
        await self._transport.close()
