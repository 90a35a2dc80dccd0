"""The operator's own state: the key of status.dataHash, in a Secret of the state namespace."""

from __future__ import annotations

import asyncio
import logging
import secrets

from secretsync.errors import ConfigError, KubeError, KubeForbiddenError, KubeNotFoundError
from secretsync.kube import Kube

STATE_SECRET = "secretsync-state"  # noqa: S105 - a Secret name, not a password
KEY = "hmac-key"
START_TIMEOUT = 120.0  # how long start-up waits for an apiserver that does not answer

logger = logging.getLogger("secretsync")


async def hmac_key(kube: Kube, namespace: str, *, patience: float = START_TIMEOUT) -> bytes:
    """Read (or create, the first time) the key. A missing namespace or missing rights are
    a ConfigError that says what to do; an apiserver that does not answer is waited for."""
    where = f"Secret {namespace}/{STATE_SECRET}"
    deadline = asyncio.get_running_loop().time() + patience
    delay = 1.0
    while True:
        try:
            return await kube.ensure_secret_key(
                namespace, STATE_SECRET, KEY, lambda: secrets.token_bytes(32)
            )
        except KubeNotFoundError:
            raise ConfigError(
                f"the state namespace {namespace!r} does not exist; create it or pass "
                f"--state-namespace (the operator keeps the key of status.dataHash in {where})"
            ) from None
        except KubeForbiddenError as exc:
            raise ConfigError(
                f"cannot read or create {where}: {exc}; grant the operator get, create and "
                "patch on it (docs/rbac.md)"
            ) from None
        except KubeError as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise ConfigError(f"cannot read or create {where}: {exc}") from None
            logger.warning("cannot read %s yet (%s); retrying in %.0fs", where, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
