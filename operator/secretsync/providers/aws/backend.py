"""The AWS backend: a store's `spec.provider.aws` as a Backend."""

from __future__ import annotations

from secretsync.errors import ProviderConfigError
from secretsync.models.remote import CallObserver
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.aws import login
from secretsync.providers.aws.parameterstore import ParameterStore
from secretsync.providers.aws.secretsmanager import SecretsManager
from secretsync.providers.base import LoginMaterial, SecretsClient, Session


class AwsBackend:
    """Secrets Manager or Parameter Store (spec.service), reached as the store's identity.

    Login is one of: AssumeRoleWithWebIdentity of `role` with a ServiceAccount
    token; static keys (then AssumeRole of `role` if set); the operator's
    ambient credentials (then AssumeRole of `role` if set). `additionalRoles`
    are then assumed in order.
    """

    name = "aws"

    def __init__(self, spec: AwsProvider) -> None:
        self.spec = spec

    async def login(self, material: LoginMaterial) -> Session:
        """A session as the store's identity; temporary credentials carry their expiry."""
        return await login.login(self.spec, material)

    def client(self, session: Session, observe: CallObserver) -> SecretsClient:
        """A client of spec.service reading as the session; SDK clients are built on first use."""
        credentials = session.credentials
        if not isinstance(
            credentials, aws_credentials.AwsCredentials | aws_credentials.AmbientCredentials
        ):
            raise ProviderConfigError(
                f"session {session.identity!r} was not made by the aws backend"
            )
        if self.spec.service == "SecretsManager":
            return SecretsManager(spec=self.spec, credentials=credentials, observe=observe)
        return ParameterStore(spec=self.spec, credentials=credentials, observe=observe)
