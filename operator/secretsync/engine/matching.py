"""Which SecretSyncs read a remote key that an event says changed."""

from __future__ import annotations

import re
from collections.abc import Iterable

from secretsync.models.sync import SecretSyncSpec

# arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
_SM_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[^:]*:[0-9]*:secret:(?P<name>.+?)(-[A-Za-z0-9]{6})?$"
)


def names(key: str) -> set[str]:
    """The names a remote key goes by: itself and, for a Secrets Manager ARN, the secret's
    name (an ARN carries a random suffix the name does not)."""
    out = {key}
    match = _SM_ARN.match(key)
    if match:
        out.add(match.group("name"))
    return out


def named_keys(spec: SecretSyncSpec) -> set[str]:
    """The remote keys a SecretSync names: of data and of dataFrom.extract."""
    keys = {d.remote_ref.key for d in spec.data}
    keys |= {df.extract.key for df in spec.data_from if df.extract}
    return keys


def reads_document(spec: SecretSyncSpec, kind: str, name: str) -> bool:
    """Whether a SecretSync names a key of this ConfigMap or Secret (a SOPS store's
    `configmap/<name>/<key>` or `secret/<name>/<key>`)."""
    prefix = f"{kind.lower()}/{name}/"
    return any(key.startswith(prefix) for key in named_keys(spec))


def reads(spec: SecretSyncSpec, changed: set[str], last_read: Iterable[str]) -> bool:
    """Whether a SecretSync reads any of the changed names: a key of data or extract,
    a key it found last time, or a new key under one of its find paths."""
    keys = named_keys(spec)
    keys.update(last_read)
    if any(names(k) & changed for k in keys):
        return True
    paths = [df.find.path for df in spec.data_from if df.find and df.find.path]
    return any(name.startswith(path) for path in paths for name in changed)
