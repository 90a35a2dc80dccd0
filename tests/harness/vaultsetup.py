"""OpenBao set-up the integration tests share: a namespace's policy and kubernetes-auth
role, a KV v2 value, and a SecretStore or SecretSync manifest that reads it."""

from __future__ import annotations

from typing import Any

from harness import scenario
from harness.devenv import DevEnv, bao_request


def put(env: DevEnv, path: str, data: dict[str, str]) -> None:
    """Write a KV v2 secret at secret/<path> (a new version if it exists)."""
    bao_request(env.vault_addr, env.vault_token, "POST", f"secret/data/{path}", {"data": data})


def bind_namespace(env: DevEnv, api: Any, namespace: str) -> None:
    """An OpenBao policy reading only <namespace>/*, and a kubernetes-auth role of the same
    name for the namespace's `sync` ServiceAccount (created here)."""
    policy = f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
    policy += f'path "secret/metadata/{namespace}/*" {{ capabilities = ["read", "list"] }}\n'
    bao_request(
        env.vault_addr, env.vault_token, "PUT", f"sys/policies/acl/{namespace}", {"policy": policy}
    )
    bao_request(
        env.vault_addr,
        env.vault_token,
        "POST",
        f"auth/kubernetes/role/{namespace}",
        {
            "bound_service_account_names": ["sync"],
            "bound_service_account_namespaces": [namespace],
            "audience": "vault",
            "token_policies": [namespace],
            "token_ttl": "1h",
        },
    )
    scenario.service_account(api, namespace, "sync")


def store(
    env: DevEnv,
    namespace: str,
    *,
    kind: str = "SecretStore",
    name: str = "vault",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A store on the environment's OpenBao (KV v2 at `secret`) logging in as the
    namespace's `sync` ServiceAccount with the role bind_namespace made."""
    meta: dict[str, Any] = {"name": name}
    if kind == "SecretStore":
        meta["namespace"] = namespace
    return {
        "apiVersion": scenario.API,
        "kind": kind,
        "metadata": meta,
        "spec": {
            "provider": {
                "vault": {
                    "server": env.vault_addr,
                    "path": "secret",
                    "version": "v2",
                    "auth": {"kubernetes": {"role": namespace, "serviceAccount": {"name": "sync"}}},
                }
            },
            **(extra or {}),
        },
    }


def sync(
    namespace: str, name: str, spec: dict[str, Any], store: str = "vault", kind: str = "SecretStore"
) -> dict[str, Any]:
    """A SecretSync of the store with the given spec (storeRef added)."""
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": store, "kind": kind}, **spec},
    }
