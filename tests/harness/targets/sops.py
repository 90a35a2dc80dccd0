"""The SOPS conformance target: documents in ConfigMaps of a namespace of its own, each
encrypted by the real `sops` CLI for an age key, read through the operator's own
namespace reader (engine/login.NamespaceDocuments) as a store's session would.

A SOPS document is a file, so put(key, value) stores the value as a whole document of
the binary format (the key has no extension): what fetch() returns is the value itself,
byte for byte. put_map stores the map's JSON the same way, and the engine's property and
extract parse it as they parse any JSON secret. Versions are digests of the encrypted
bytes, so they move with each document and only with it; a document cannot be read at
an earlier version (refused), and nothing can be found by path or tag (refused):
capabilities say so.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import kubernetes
import pyrage

from harness import sopscli
from harness.devenv import DevEnv
from secretsync.engine.login import NamespaceDocuments
from secretsync.kube import Kube
from secretsync.models.store import SecretKeyRef, SopsAge, SopsProvider
from secretsync.providers.base import Backend, LoginMaterial
from secretsync.providers.sops import SopsBackend
from secretsync.testing import Capabilities, ConformanceTarget


class SopsTarget:
    """Age-encrypted documents in ConfigMaps, one ConfigMap per prefix()."""

    name = "sops-age"
    # age keys are local: validate() checks the key file and has nothing to call.
    # Versions are digests of each document: they move with it, but an earlier one cannot
    # be read.
    capabilities = Capabilities(binary=True, change_versions=True, validate_calls=False)

    def __init__(self, env: DevEnv) -> None:
        self.env = env
        self.namespace = f"conformance-sops-{uuid.uuid4().hex[:8]}"
        self._identity = pyrage.x25519.Identity.generate()
        self._lock = threading.Lock()
        self._api: Any = None
        self._kube: Kube | None = None

    # --- ConformanceTarget ------------------------------------------------------------

    def backend(self) -> Backend:
        return SopsBackend(
            SopsProvider(age=SopsAge(secret_ref=SecretKeyRef(name="sops-age", key="keys.txt")))
        )

    def material(self) -> LoginMaterial:
        kube = self._setup()
        return LoginMaterial(
            secrets={"ageKey": f"{self._identity}\n".encode()},
            documents=NamespaceDocuments(kube, self.namespace),
        )

    def prefix(self) -> str:
        return f"configmap/docs-{uuid.uuid4().hex[:8]}/"

    def put(self, key: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        self._write(key, sopscli.encrypt(raw, fmt="binary", age_recipients=[self._recipient]))

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.put(key, json.dumps(dict(value)))

    def stored_bytes(self, value: str) -> bytes:
        return value.encode()

    def denied_key(self) -> str | None:
        # The session reads its own namespace only, and may read all of it: there is no
        # key it can name and be refused (another namespace cannot be named at all).
        return None

    # --- seeding ------------------------------------------------------------------------

    @property
    def _recipient(self) -> str:
        return str(self._identity.to_public())

    def _write(self, key: str, document: bytes) -> None:
        """Set one key of the prefix's ConfigMap (created on first use)."""
        self._setup()
        _, name, item = key.split("/", 2)
        core = kubernetes.client.CoreV1Api(self._api)
        encoded: dict[str, bytes | str] = {item: base64.b64encode(document).decode()}
        patch = {"binaryData": encoded}
        try:
            core.patch_namespaced_config_map(name, self.namespace, patch)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_config_map(
                self.namespace,
                kubernetes.client.V1ConfigMap(
                    metadata=kubernetes.client.V1ObjectMeta(name=name),
                    binary_data=encoded,
                ),
            )

    def _setup(self) -> Kube:
        with self._lock:
            if self._kube is None:
                self._api = self.env.api_client()
                kubernetes.client.CoreV1Api(self._api).create_namespace(
                    kubernetes.client.V1Namespace(
                        metadata=kubernetes.client.V1ObjectMeta(name=self.namespace)
                    )
                )
                self._kube = Kube(self.env.api_client())
            return self._kube


_TARGETS: dict[str, list[ConformanceTarget]] = {}


def targets(env: DevEnv) -> list[ConformanceTarget]:
    """The SOPS target of this environment ("sops-age"), made once per run."""
    key = str(env.run_dir)
    if key not in _TARGETS:
        _TARGETS[key] = [SopsTarget(env)]
    return _TARGETS[key]
