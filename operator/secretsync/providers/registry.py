"""The backend for a store's provider spec."""

from __future__ import annotations

from secretsync.errors import ProviderConfigError
from secretsync.models.store import ProviderSpec
from secretsync.providers.base import Backend


def backend_for(provider: ProviderSpec) -> Backend:
    """The Backend configured from `spec.provider`.

    Each backend is imported when a store first asks for it, so an operator
    reading only Vault never loads boto3, and the reverse.
    """
    if provider.aws is not None and provider.vault is not None:
        raise ProviderConfigError("spec.provider: set exactly one provider, not both aws and vault")
    if provider.aws is not None:
        from secretsync.providers.aws import AwsBackend

        return AwsBackend(provider.aws)
    if provider.vault is not None:
        from secretsync.providers.vault import VaultBackend

        return VaultBackend(provider.vault)
    raise ProviderConfigError("spec.provider: no provider set")
