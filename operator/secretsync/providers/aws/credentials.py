"""The credentials an AWS session holds, and the SDK objects built from them.

Every SDK client gets the store's endpoint and region passed explicitly and
ignores endpoints configured through AWS_ENDPOINT_URL* or ~/.aws/config: a
store reads from where its spec says, whatever the operator's environment.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from secretsync.models.store import AwsProvider

if TYPE_CHECKING:
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


def _config(*, unsigned: bool = False) -> Config:
    # Standard retry mode backs off on throttling within one call; the engine retries
    # the rest. Timeouts keep a dead endpoint from holding a worker thread for minutes.
    config = Config(
        # botocore-stubs lag botocore here: the option exists since botocore 1.31.
        ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
    )
    return config.merge(Config(signature_version=UNSIGNED)) if unsigned else config


def boto_session(credentials: Credentials, spec: AwsProvider) -> boto3.Session:
    """A boto3 session signing with the credentials (not thread-safe: build clients from
    it on one thread; the clients themselves are thread-safe)."""
    if isinstance(credentials, AmbientCredentials):
        return boto3.Session(region_name=spec.region)
    return boto3.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=spec.region,
    )


def sts_client(session: boto3.Session, spec: AwsProvider) -> STSClient:
    """An STS client for the store's endpoint and region."""
    return session.client(
        "sts", endpoint_url=spec.endpoint, region_name=spec.region, config=_config()
    )


def unsigned_sts_client(spec: AwsProvider) -> STSClient:
    """An STS client that signs nothing: AssumeRoleWithWebIdentity needs no credentials,
    and an unsigned client cannot pick up the operator's own by accident."""
    return boto3.Session(region_name=spec.region).client(
        "sts", endpoint_url=spec.endpoint, region_name=spec.region, config=_config(unsigned=True)
    )


def secretsmanager_client(session: boto3.Session, spec: AwsProvider) -> SecretsManagerClient:
    """A Secrets Manager client for the store's endpoint and region."""
    return session.client(
        "secretsmanager", endpoint_url=spec.endpoint, region_name=spec.region, config=_config()
    )


def ssm_client(session: boto3.Session, spec: AwsProvider) -> SSMClient:
    """An SSM client for the store's endpoint and region."""
    return session.client(
        "ssm", endpoint_url=spec.endpoint, region_name=spec.region, config=_config()
    )


def sqs_client(session: boto3.Session, spec: AwsProvider) -> SQSClient:
    """An SQS client for the store's endpoint and region (its event queue; a long poll of
    20 s stays within the read timeout)."""
    return session.client(
        "sqs", endpoint_url=spec.endpoint, region_name=spec.region, config=_config()
    )
