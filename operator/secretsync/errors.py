"""The operator's exception hierarchy.

::

    SecretSyncError
    ├── ConfigError                  a resource or the command line is wrong; retrying won't help
    ├── KubeError                    the Kubernetes API refused or failed a call
    │   └── KubeNotFoundError
    └── ProviderError                a secret manager call failed
        ├── SecretNotFoundError      the remote secret does not exist (drives deletionPolicy)
        ├── ProviderAuthError        login or credentials refused
        │   └── AccessDeniedError    logged in, but not allowed to read that secret
        ├── ProviderConfigError      the store's provider settings are unusable
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


class ProviderUnavailableError(ProviderError):
    """The provider is down or throttling; the call may succeed later."""
