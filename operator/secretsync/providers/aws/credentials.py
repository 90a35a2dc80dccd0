"""The credentials an AWS session holds, and the SDK objects built from them.

Every SDK client gets the store's endpoint and region passed explicitly and
ignores endpoints configured through AWS_ENDPOINT_URL* or ~/.aws/config: a
store reads from where its spec says, whatever the operator's environment.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from secretsync.models.store import AwsIdentity

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient


@dataclasses.dataclass(frozen=True, kw_only=True)
class AwsCredentials:
    """Keys to sign requests with: static keys, or temporary ones from STS."""

    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class AmbientCredentials:
    """boto3's default credential chain (environment, profile, IRSA, instance role).

    Kept as a chain rather than frozen keys so that botocore renews them itself.
    """


AMBIENT = AmbientCredentials()
Credentials = AwsCredentials | AmbientCredentials


def _config(*, unsigned: bool = False, path_style: bool = False) -> Config:
    # One attempt per call: the engine's circuit per identity and endpoint backs off
    # (docs/design/0006-reliability.md). SDK retries under it would multiply every
    # throttled call by three while the throttling lasts. Timeouts keep a dead endpoint
    # from holding a worker thread for minutes.
    config = Config(
        # botocore-stubs lag botocore here: the option exists since botocore 1.31.
        ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=30,
    )
    if path_style:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return config.merge(Config(signature_version=UNSIGNED)) if unsigned else config


# One boto3 Session per region for the whole process. Each Session has its own botocore
# loader, which parses the service models and endpoint rules again: about 8.6 MiB per
# identity when every identity had its own (measured by `make bench`, docs/benchmarks.md).
# Clients built from the shared Session sign with the keys passed to them; a client
# without keys uses the default (ambient) chain. Sessions are not thread-safe, so
# clients are built under a lock; clients themselves are.
_SESSIONS: dict[str, boto3.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _client(
    service: str,
    credentials: Credentials,
    spec: AwsIdentity,
    *,
    unsigned: bool = False,
    path_style: bool = False,
) -> Any:
    keys: dict[str, Any] = {}
    if isinstance(credentials, AwsCredentials) and not unsigned:
        keys = {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(spec.region)
        if session is None:
            session = _SESSIONS[spec.region] = boto3.Session(region_name=spec.region)
        return session.client(  # type: ignore[call-overload]  # service is a str here
            service,
            endpoint_url=spec.endpoint,
            region_name=spec.region,
            config=_config(unsigned=unsigned, path_style=path_style),
            **keys,
        )


def ambient_available(spec: AwsIdentity) -> bool:
    """Whether the default credential chain finds credentials for the operator itself."""
    # A fresh Session: the shared one caches what the chain found the first time.
    return boto3.Session(region_name=spec.region).get_credentials() is not None


def sts_client(credentials: Credentials, spec: AwsIdentity) -> STSClient:
    """An STS client for the store's endpoint and region."""
    return cast("STSClient", _client("sts", credentials, spec))


def unsigned_sts_client(spec: AwsIdentity) -> STSClient:
    """An STS client that signs nothing: AssumeRoleWithWebIdentity needs no credentials,
    and an unsigned client cannot pick up the operator's own by accident."""
    return cast("STSClient", _client("sts", AMBIENT, spec, unsigned=True))


def secretsmanager_client(credentials: Credentials, spec: AwsIdentity) -> SecretsManagerClient:
    """A Secrets Manager client for the store's endpoint and region."""
    return cast("SecretsManagerClient", _client("secretsmanager", credentials, spec))


def ssm_client(credentials: Credentials, spec: AwsIdentity) -> SSMClient:
    """An SSM client for the store's endpoint and region."""
    return cast("SSMClient", _client("ssm", credentials, spec))


def kms_client(credentials: Credentials, spec: AwsIdentity) -> KMSClient:
    """A KMS client for the store's endpoint and region (SOPS data keys)."""
    return cast("KMSClient", _client("kms", credentials, spec))


def s3_client(credentials: Credentials, spec: AwsIdentity) -> S3Client:
    """An S3 client for the store's endpoint and region (SOPS documents). Path-style
    addressing: bucket names then never have to resolve as host names (emulators,
    VPC endpoints, buckets with dots)."""
    return cast("S3Client", _client("s3", credentials, spec, path_style=True))


def sqs_client(credentials: Credentials, spec: AwsIdentity) -> SQSClient:
    """An SQS client for the store's endpoint and region (its event queue; a long poll of
    20 s stays within the read timeout)."""
    return cast("SQSClient", _client("sqs", credentials, spec))
