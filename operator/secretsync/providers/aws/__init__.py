"""AWS Secrets Manager and SSM Parameter Store."""

from secretsync.providers.aws.backend import AwsBackend
from secretsync.providers.aws.credentials import AmbientCredentials, AwsCredentials

__all__ = ["AmbientCredentials", "AwsBackend", "AwsCredentials"]
