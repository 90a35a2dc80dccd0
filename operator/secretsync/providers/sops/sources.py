"""Where a SOPS document is: the remote key's grammar (docs/providers/sops.md).

    configmap/<name>/<key>    a key of a ConfigMap in the SecretSync's namespace
    secret/<name>/<key>       a key of a Secret in the SecretSync's namespace
    s3://<bucket>/<object>    an S3 object, read as the store's AWS identity

A namespace is never part of the key: documents are read in the SecretSync's namespace
only, so a store cannot be used to read another team's objects.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from secretsync.errors import ProviderConfigError

_OBJECT = re.compile(r"^(configmap|secret)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)$")
_S3 = re.compile(r"^s3://([a-z0-9][-a-z0-9.]{1,61}[a-z0-9])/(.+)$")


@dataclasses.dataclass(frozen=True, slots=True)
class InCluster:
    kind: Literal["ConfigMap", "Secret"]
    name: str
    key: str

    @property
    def file_name(self) -> str:
        return self.key  # the format is the key's extension, as sops reads a file's


@dataclasses.dataclass(frozen=True, slots=True)
class InS3:
    bucket: str
    key: str

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


Source = InCluster | InS3


def parse(remote_key: str) -> Source:
    """The document a remote key names; ProviderConfigError saying the grammar if none."""
    match = _OBJECT.match(remote_key)
    if match:
        kind: Literal["ConfigMap", "Secret"] = "ConfigMap" if match[1] == "configmap" else "Secret"
        return InCluster(kind=kind, name=match[2], key=match[4])
    match = _S3.match(remote_key)
    if match:
        return InS3(bucket=match[1], key=match[2])
    raise ProviderConfigError(
        f"sops: remote key {remote_key!r} names no document: use configmap/<name>/<key> or "
        "secret/<name>/<key> (in the SecretSync's namespace) or s3://<bucket>/<object>"
    )


def describe(source: Source, namespace: str) -> str:
    """The document in words, for messages (never a value)."""
    if isinstance(source, InS3):
        return f"S3 object s3://{source.bucket}/{source.key}"
    return f"{source.kind} {namespace}/{source.name} key {source.key}"
