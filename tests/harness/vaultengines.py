"""OpenBao's engines that issue credentials: the database engine against the harness's
PostgreSQL, and a PKI mount with a root CA. Roles, policies and lease inspection for
the tests and the demo (docs/vault.md shows the same set-up for a real Vault)."""

from __future__ import annotations

import urllib.error
from typing import Any

from harness.bao import bao_request
from harness.postgres import Postgres

DATABASE_MOUNT = "database"
CONNECTION = "postgres"
PKI_MOUNT = "pki"
PKI_DOMAIN = "secretsync.test"
ROOT_CN = "secretsync test root CA"

# What Vault runs in PostgreSQL to make and drop a role (a login that owns and is granted
# nothing, so it can always be dropped); the drop ends the role's sessions first, so
# revoked credentials stop working at once.
CREATE = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
REVOKE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'; "
    'DROP ROLE IF EXISTS "{{name}}";'
)


def configure(addr: str, token: str, pg: Postgres) -> None:
    """Mount database/ with a connection to PostgreSQL as its admin, and pki/ with a root CA."""
    bao_request(addr, token, "POST", f"sys/mounts/{DATABASE_MOUNT}", {"type": "database"})
    bao_request(
        addr,
        token,
        "POST",
        f"{DATABASE_MOUNT}/config/{CONNECTION}",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
            "username": pg.admin,
            "password": pg.admin_password,
            "allowed_roles": "*",
            "verify_connection": True,
        },
    )
    bao_request(
        addr,
        token,
        "POST",
        f"sys/mounts/{PKI_MOUNT}",
        {"type": "pki", "config": {"max_lease_ttl": "87600h"}},
    )
    bao_request(
        addr,
        token,
        "POST",
        f"{PKI_MOUNT}/root/generate/internal",
        {"common_name": ROOT_CN, "ttl": "87600h", "key_type": "ec", "key_bits": 256},
    )


def database_role(env: Any, name: str, *, default_ttl: str, max_ttl: str) -> None:
    """A database role issuing PostgreSQL logins with these TTLs."""
    bao_request(
        env.vault_addr,
        env.vault_token,
        "POST",
        f"{DATABASE_MOUNT}/roles/{name}",
        {
            "db_name": CONNECTION,
            "creation_statements": [CREATE],
            "revocation_statements": [REVOKE],
            "default_ttl": default_ttl,
            "max_ttl": max_ttl,
        },
    )


def pki_role(env: Any, name: str, *, max_ttl: str = "1h") -> None:
    """A PKI role issuing certificates for <anything>.secretsync.test (and IP SANs)."""
    bao_request(
        env.vault_addr,
        env.vault_token,
        "POST",
        f"{PKI_MOUNT}/roles/{name}",
        {
            "allowed_domains": [PKI_DOMAIN],
            "allow_subdomains": True,
            "allow_ip_sans": True,
            "key_type": "ec",
            "key_bits": 256,
            "max_ttl": max_ttl,
        },
    )


def root_ca(env: Any) -> str:
    """The PKI mount's root certificate (PEM)."""
    body = bao_request(env.vault_addr, env.vault_token, "GET", f"{PKI_MOUNT}/cert/ca")
    return str(body["data"]["certificate"])


def leases(env: Any, prefix: str) -> list[str]:
    """The ids of the leases alive under a path (database/creds/<role>)."""
    try:
        body = bao_request(
            env.vault_addr, env.vault_token, "LIST", f"sys/leases/lookup/{prefix.strip('/')}/"
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return [f"{prefix.strip('/')}/{key}" for key in body["data"]["keys"]]


def lease(env: Any, lease_id: str) -> dict[str, Any]:
    """sys/leases/lookup of one lease: expire_time, last_renewal, ttl..."""
    body = bao_request(
        env.vault_addr, env.vault_token, "PUT", "sys/leases/lookup", {"lease_id": lease_id}
    )
    return dict(body["data"])
