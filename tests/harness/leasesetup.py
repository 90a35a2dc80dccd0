"""Set-up the tests of issued credentials share (docs/vault.md, "Dynamic secrets"): a
namespace's Vault policy and role for the database and PKI roles it may use, and
SecretSync manifests that ask for them."""

from __future__ import annotations

from typing import Any

from harness import scenario, vaultengines, vaultsetup
from harness.bao import bao_request


def policy(namespace: str) -> str:
    """The minimal policy of docs/vault.md: issue from the namespace's own database role
    and PKI role, revoke its certificates; renewal and revocation of leases come with
    Vault's default policy (sys/leases/renew, auth/token/renew-self, revoke-self)."""
    return (
        f'path "{vaultengines.DATABASE_MOUNT}/creds/{namespace}" {{ capabilities = ["read"] }}\n'
        f'path "{vaultengines.PKI_MOUNT}/issue/{namespace}" {{ capabilities = ["update"] }}\n'
        f'path "{vaultengines.PKI_MOUNT}/revoke" {{ capabilities = ["update"] }}\n'
    )


def bind(env: Any, api: Any, namespace: str, *, login_ttl: str = "1h") -> None:
    """The namespace's policy and kubernetes-auth role (for its `sync` ServiceAccount)."""
    addr, root = env.vault_addr, env.vault_token
    bao_request(
        addr, root, "PUT", f"sys/policies/acl/leases-{namespace}", {"policy": policy(namespace)}
    )
    bao_request(
        addr,
        root,
        "POST",
        f"auth/kubernetes/role/leases-{namespace}",
        {
            "bound_service_account_names": ["sync"],
            "bound_service_account_namespaces": [namespace],
            "audience": "vault",
            "token_policies": [f"leases-{namespace}"],
            "token_ttl": login_ttl,
        },
    )
    scenario.service_account(api, namespace, "sync")


def store(
    env: Any, namespace: str, *, server: str | None = None, name: str = "vault"
) -> dict[str, Any]:
    """vaultsetup.store, logging in with the role `bind` made (through `server`, e.g. a
    recording proxy)."""
    doc = vaultsetup.store(env, namespace, name=name)
    vault = doc["spec"]["provider"]["vault"]
    vault["auth"]["kubernetes"]["role"] = f"leases-{namespace}"
    if server:
        vault["server"] = server
    return doc


def _sync(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": "vault"}, **spec},
    }


def database_sync_of(store: str, namespace: str, name: str) -> dict[str, Any]:
    """database_sync through the SecretStore of that name."""
    doc = database_sync(namespace, name)
    doc["spec"]["storeRef"] = {"name": store}
    return doc


def database_sync(
    namespace: str, name: str, *, lease: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A SecretSync of the namespace's database role."""
    path = f"{vaultengines.DATABASE_MOUNT}/creds/{namespace}"
    return _sync(namespace, name, {"dynamic": {"path": path}, **spec, **_lease(lease)})


def certificate_sync(
    namespace: str, name: str, certificate: dict[str, Any], *, lease: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A SecretSync of a certificate from the namespace's PKI role."""
    body = {"certificate": {"role": namespace, **certificate}, **_lease(lease)}
    return _sync(namespace, name, body)


def _lease(lease: dict[str, Any] | None) -> dict[str, Any]:
    return {"lease": lease} if lease else {}


def database_leases(env: Any, namespace: str) -> list[str]:
    """The leases alive under the namespace's database role."""
    return vaultengines.leases(env, f"{vaultengines.DATABASE_MOUNT}/creds/{namespace}")
