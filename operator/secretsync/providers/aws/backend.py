"""The AWS backend: a store's `spec.provider.aws` as a Backend."""

from __future__ import annotations

from secretsync.errors import ProviderConfigError
from secretsync.models.remote import CallGate, CallObserver
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.aws import login
from secretsync.providers.aws.parameterstore import ParameterStore
from secretsync.providers.aws.queue import SqsQueue
from secretsync.providers.aws.secretsmanager import SecretsManager
from secretsync.providers.base import EventQueue, LoginMaterial, SecretsClient, Session


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

    @property
    def endpoint(self) -> str:
        """Where calls go: throttling and outages are per service, region and endpoint."""
        return f"aws:{self.spec.service}:{self.spec.region}:{self.spec.endpoint or ''}"

    def client(self, session: Session, gate: CallGate) -> SecretsClient:
        """A client of spec.service reading as the session; SDK clients are built on first use."""
        credentials = _credentials(session)
        if self.spec.service == "SecretsManager":
            return SecretsManager(spec=self.spec, credentials=credentials, gate=gate)
        return ParameterStore(spec=self.spec, credentials=credentials, gate=gate)

    def event_queue(self, session: Session, queue_url: str, observe: CallObserver) -> EventQueue:
        """The store's SQS event queue (spec.events.sqs), read as the session from the
        store's endpoint and region; the SDK client is built on first use."""
        return SqsQueue(
            spec=self.spec, credentials=_credentials(session), queue_url=queue_url, observe=observe
        )


def _credentials(session: Session) -> aws_credentials.Credentials:
    credentials = session.credentials
    if not isinstance(
        credentials, aws_credentials.AwsCredentials | aws_credentials.AmbientCredentials
    ):
        raise ProviderConfigError(f"session {session.identity!r} was not made by the aws backend")
    return credentials
