"""The operator's exception hierarchy.

::

    SecretSyncError
    ├── ConfigError                  a resource or the command line is wrong; retrying won't help
    ├── KubeError                    the Kubernetes API refused or failed a call
    │   ├── KubeNotFoundError
    │   ├── KubeConflictError        someone else changed the object since it was read (409)
    │   ├── KubeForbiddenError       the operator's identity may not do that (RBAC, 401/403)
    │   └── KubeFencedError          a write in a namespace this replica does not serve (sharding)
    └── ProviderError                a secret manager call failed
        ├── SecretNotFoundError      the remote secret does not exist (drives deletionPolicy)
        ├── ProviderAuthError        login or credentials refused
        │   └── AccessDeniedError    logged in, but not allowed to read that secret
        ├── ProviderConfigError      the store's provider settings are unusable
        ├── DocumentRefusedError     a document was read but refused (tampered, malformed)
        └── ProviderUnavailableError down or throttling; retry with backoff

Messages never carry a secret value: they name resources, keys and fields only.
"""


class SecretSyncError(Exception):
    """Base of every error the operator raises on purpose."""


class ConfigError(SecretSyncError):
    """A resource or the command line is wrong; the message says what and where."""


class KubeError(SecretSyncError):
    """The Kubernetes API refused or failed a call."""


class KubeNotFoundError(KubeError):
    """The object asked for does not exist."""


class KubeConflictError(KubeError):
    """The object changed since it was read (HTTP 409): read it again and retry."""


class KubeForbiddenError(KubeError):
    """The apiserver refused the operator's identity (401) or its RBAC forbids the call (403)."""


class KubeFencedError(KubeError):
    """Refused before it was sent: the namespace belongs to a shard this replica does not
    hold (any more), so another replica may be writing there."""


class ProviderError(SecretSyncError):
    """A secret manager call failed."""


class SecretNotFoundError(ProviderError):
    """The remote secret does not exist."""


class ProviderAuthError(ProviderError):
    """The provider refused the identity's login or credentials."""


class AccessDeniedError(ProviderAuthError):
    """The identity is valid but may not read that secret."""


class ProviderConfigError(ProviderError):
    """The store's provider settings cannot work."""


class DocumentRefusedError(ProviderError):
    """A remote document was read but is refused: tampered with (its MAC does not match),
    malformed, or encrypted for keys the store does not have. Nothing of it is written."""


class ProviderUnavailableError(ProviderError):
    """The provider is down or throttling; the call may succeed later.

    `retry_after` is how many seconds the provider (a `Retry-After` header) or the
    identity's open circuit asks callers to wait, when known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
