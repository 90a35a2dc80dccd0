"""Vault conformance targets: OpenBao's KV v2 (the dev server's secret/) and a KV v1 mount.

Each target reads as a least-privilege identity, the way a store would: a
ServiceAccount in a namespace of its own, logging in through OpenBao's
kubernetes auth (the apiserver reviews the TokenRequest token) to a role whose
policy allows read and list under the target's folder only (and list at the
mount's root, so a find without a path can walk the mount). Seeding uses the
root token. Setup happens on first use and once per target.

A Vault secret is always a map, so put(key, value) stores {"value": value}
unless the value is a JSON object, which is stored as the map itself; what the
provider returns is the map as compact, key-sorted JSON either way.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import kubernetes

from harness import kube
from harness.devenv import DevEnv, bao_request
from secretsync.models.store import (
    ServiceAccountRef,
    VaultAuth,
    VaultKubernetesAuth,
    VaultProvider,
)
from secretsync.providers.base import Backend, LoginMaterial
from secretsync.providers.vault import VaultBackend
from secretsync.testing import Capabilities, ConformanceTarget

AUDIENCE = "vault"
TOKEN_SECONDS = 3600


def _create(call: Any, *args: Any) -> None:
    """A Kubernetes create that tolerates an object left by an earlier use."""
    try:
        call(*args)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


class VaultTarget:
    """One KV mount of the dev OpenBao, read through kubernetes auth."""

    def __init__(self, env: DevEnv, *, name: str, version: Literal["v1", "v2"], mount: str):
        self.name = name
        self.env = env
        self.version = version
        self.mount = mount
        suffix = uuid.uuid4().hex[:8]
        self.namespace = f"conformance-{name}-{suffix}"
        self.service_account = "secretsync-reader"
        self.role = f"conformance-{name}-{suffix}"
        self.folder = f"conformance-{suffix}"  # everything the identity may read
        self._api: Any = None
        self._ready = False
        self._lock = threading.Lock()
        self._denied: str | None = None
        self.capabilities = Capabilities(
            binary=False,  # KV stores JSON strings; non-UTF-8 bytes cannot be written
            # KV v1 keeps no versions: pinned reads are refused and versions() is constant.
            versions=version == "v2",
            find=True,
            find_tags=False,  # Vault has no tags: a find by tags is refused
        )

    # --- ConformanceTarget ------------------------------------------------------------

    def backend(self) -> Backend:
        self._setup()
        return VaultBackend(
            VaultProvider(
                server=self.env.vault_addr,
                path=self.mount,
                version=self.version,
                auth=VaultAuth(
                    kubernetes=VaultKubernetesAuth(
                        role=self.role,
                        service_account=ServiceAccountRef(
                            name=self.service_account, audiences=(AUDIENCE,)
                        ),
                    )
                ),
            )
        )

    def material(self) -> LoginMaterial:
        self._setup()
        token = kube.token_request(
            self._api,
            namespace=self.namespace,
            service_account=self.service_account,
            audiences=[AUDIENCE],
            seconds=TOKEN_SECONDS,
        )
        return LoginMaterial(service_account_token=token)

    def prefix(self) -> str:
        return f"{self.folder}/{uuid.uuid4().hex[:8]}/"

    def put(self, key: str, value: str | bytes) -> None:
        text = value.decode() if isinstance(value, bytes) else value
        self.write(key, json.loads(self.stored_bytes(text)))

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.write(key, dict(value))

    def denied_key(self) -> str | None:
        self._setup()
        return self._denied

    def stored_bytes(self, value: str) -> bytes:
        """What fetch() returns for put(key, value): the KV map as compact, sorted JSON."""
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        data = parsed if isinstance(parsed, dict) else {"value": value}
        return json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()

    # --- seeding with the root token ----------------------------------------------------

    def write(self, key: str, data: dict[str, Any]) -> None:
        """Create or overwrite a secret (a new version on KV v2)."""
        self._setup()
        if self.version == "v2":
            self._bao("POST", f"{self.mount}/data/{key}", {"data": data})
        else:
            self._bao("POST", f"{self.mount}/{key}", data)

    def _bao(self, method: str, path: str, body: object = None) -> Any:
        return bao_request(self.env.vault_addr, self.env.vault_token, method, path, body)

    def _setup(self) -> None:
        with self._lock:
            if self._ready:
                return
            self._api = self.env.api_client()
            if self.version == "v1":
                self._bao(
                    "POST", f"sys/mounts/{self.mount}", {"type": "kv", "options": {"version": "1"}}
                )
            core = kubernetes.client.CoreV1Api(self._api)
            meta = kubernetes.client.V1ObjectMeta
            _create(
                core.create_namespace,
                kubernetes.client.V1Namespace(metadata=meta(name=self.namespace)),
            )
            _create(
                core.create_namespaced_service_account,
                self.namespace,
                kubernetes.client.V1ServiceAccount(metadata=meta(name=self.service_account)),
            )
            # Read and list under the folder; list (only) at the mount's root, so
            # a find without a path can search the mount as far as it may see.
            if self.version == "v2":
                root = f"{self.mount}/metadata/"
                paths = [f"{self.mount}/data/{self.folder}/*", f"{root}{self.folder}/*"]
            else:
                root = f"{self.mount}/"
                paths = [f"{root}{self.folder}/*"]
            rules = [f'path "{p}" {{ capabilities = ["read", "list"] }}' for p in paths]
            rules.append(f'path "{root}" {{ capabilities = ["list"] }}')
            policy = "\n".join(rules)
            self._bao("PUT", f"sys/policies/acl/{self.role}", {"policy": policy})
            self._bao(
                "POST",
                f"auth/kubernetes/role/{self.role}",
                {
                    "bound_service_account_names": [self.service_account],
                    "bound_service_account_namespaces": [self.namespace],
                    "audience": AUDIENCE,
                    "token_policies": [self.role],
                    "token_ttl": "1h",
                },
            )
            # A real secret beside the folder: OpenBao, not the test, must refuse it.
            self._denied = f"denied-{self.folder}/secret"
            data = {"value": "not-for-this-identity"}
            if self.version == "v2":
                self._bao("POST", f"{self.mount}/data/{self._denied}", {"data": data})
            else:
                self._bao("POST", f"{self.mount}/{self._denied}", data)
            self._ready = True


_TARGETS: dict[str, list[ConformanceTarget]] = {}


def targets(env: DevEnv) -> list[ConformanceTarget]:
    """The Vault targets of this environment ("vault-kv2", "vault-kv1"), made once per run."""
    key = str(env.run_dir)
    if key not in _TARGETS:
        _TARGETS[key] = [
            VaultTarget(env, name="vault-kv2", version="v2", mount="secret"),
            VaultTarget(env, name="vault-kv1", version="v1", mount=f"kv1-{uuid.uuid4().hex[:8]}"),
        ]
    return _TARGETS[key]
