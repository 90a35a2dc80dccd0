"""Conformance targets for AWS Secrets Manager and SSM Parameter Store, on the environment's moto.

The backend logs in as a store with a ServiceAccount would: a web identity
token exchanged for a role (moto's STS does not verify the token, so a
JWT-shaped dummy stands in for a TokenRequest token). Seeding uses a separate
admin client with moto's dummy keys.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import ClientError

from harness.devenv import AWS_REGION, DevEnv
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import AwsBackend
from secretsync.providers.base import Backend, LoginMaterial
from secretsync.testing import CallBudget, Capabilities, ConformanceTarget

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient

ACCOUNT = "123456789012"  # moto's default account: the seeding keys and the role share it
READER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/secretsync-conformance-reader"
# moto accepts any credentials; this is a dummy, never a real key.
ADMIN_KEY = "testing"


def dummy_token(namespace: str = "conformance", service_account: str = "reader") -> str:
    """A JWT-shaped token (header.claims.signature) with a ServiceAccount subject; unsigned."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": f"system:serviceaccount:{namespace}:{service_account}", "aud": ["sts"]}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _admin_session() -> boto3.Session:
    return boto3.Session(
        region_name=AWS_REGION, aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_KEY
    )


def admin_secretsmanager(endpoint: str) -> SecretsManagerClient:
    """A Secrets Manager client with moto's dummy admin keys, for seeding."""
    return _admin_session().client("secretsmanager", endpoint_url=endpoint)


def admin_ssm(endpoint: str) -> SSMClient:
    """An SSM client with moto's dummy admin keys, for seeding."""
    return _admin_session().client("ssm", endpoint_url=endpoint)


class _AwsTarget:
    name: str
    service: Literal["SecretsManager", "ParameterStore"]

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def spec(self) -> AwsProvider:
        return AwsProvider(
            service=self.service, region=AWS_REGION, endpoint=self.endpoint, role=READER_ROLE
        )

    def backend(self) -> Backend:
        return AwsBackend(self.spec())

    def material(self) -> LoginMaterial:
        return LoginMaterial(service_account_token=dummy_token())

    def stored_bytes(self, value: str) -> bytes:
        return value.encode()  # a value store: what was put comes back

    def denied_key(self) -> str | None:
        # moto's server does not enforce IAM unless asked at start, and the shared
        # environment's moto is not; denial is tested in test_provider_aws.py against a
        # moto of its own that enforces IAM.
        return None


class SecretsManagerTarget(_AwsTarget):
    """Secrets Manager on moto."""

    name = "aws-secretsmanager"
    service = "SecretsManager"
    capabilities = Capabilities(
        binary=True,
        versions=True,
        find=True,
        find_tags=True,
        fetch_batch=CallBudget(operation="BatchGetSecretValue", per_call=20),
        # One ListSecrets answers for a page of names that share a prefix.
        versions_batch=CallBudget(operation="ListSecrets", per_call=100),
    )

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self._client = admin_secretsmanager(endpoint)

    def prefix(self) -> str:
        return f"secretsync-conformance/{uuid.uuid4().hex[:12]}/"

    def put(self, key: str, value: str | bytes) -> None:
        field: dict[str, Any] = (
            {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
        )
        try:
            self._client.put_secret_value(SecretId=key, **field)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self._client.create_secret(Name=key, **field)

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.put(key, json.dumps(dict(value)))

    def put_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self._client.tag_resource(
            SecretId=key, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )


class ParameterStoreTarget(_AwsTarget):
    """SSM Parameter Store on moto; SecureString parameters, as secrets should be."""

    name = "aws-parameterstore"
    service = "ParameterStore"
    capabilities = Capabilities(
        binary=False,  # parameters hold text only
        versions=True,
        find=True,
        find_tags=True,
        fetch_batch=CallBudget(operation="GetParameters", per_call=10),
        versions_batch=CallBudget(operation="GetParameters", per_call=10),
    )

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self._client = admin_ssm(endpoint)

    def prefix(self) -> str:
        # A hierarchy: SSM names holding "/" must start with one.
        return f"/secretsync-conformance/{uuid.uuid4().hex[:12]}/"

    def put(self, key: str, value: str | bytes) -> None:
        if isinstance(value, bytes):
            raise TypeError("SSM parameters hold text only; capabilities.binary is False")
        self._client.put_parameter(Name=key, Value=value, Type="SecureString", Overwrite=True)

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.put(key, json.dumps(dict(value)))

    def put_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self._client.add_tags_to_resource(
            ResourceType="Parameter",
            ResourceId=key,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )


def targets(env: DevEnv) -> list[ConformanceTarget]:
    """Both AWS services, on the environment's moto."""
    return [SecretsManagerTarget(env.aws_endpoint), ParameterStoreTarget(env.aws_endpoint)]
