"""Turn login material into an AWS session: web identity, static keys or the ambient chain,
then the store's role and additional roles assumed in order."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from botocore import exceptions as botocore_exceptions

from secretsync.errors import ProviderAuthError, ProviderConfigError
from secretsync.models.store import AwsIdentity
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.aws import errors
from secretsync.providers.base import LoginMaterial, Session

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import CredentialsTypeDef

_FIELD = "spec.provider.aws"
_SESSION_NAME_LIMIT = 64  # STS RoleSessionName: 2-64 of [\w+=,.@-]
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")
_SA_SUBJECT = "system:serviceaccount:"

T = TypeVar("T")


async def login(spec: AwsIdentity, material: LoginMaterial) -> Session:
    """A session for the store's identity; each role in the chain is assumed with the
    credentials of the step before."""
    session_name = "secretsync-operator"
    creds: aws_credentials.Credentials
    expires_at: float | None = None
    if material.service_account_token:
        if not spec.role:
            raise ProviderConfigError(
                f"{_FIELD}.role: a serviceAccount identity needs a role to assume "
                "with AssumeRoleWithWebIdentity"
            )
        session_name = _session_name(material.service_account_token)
        creds, expires_at = await _assume_role_with_web_identity(
            spec, material.service_account_token, session_name
        )
        identity = spec.role
    else:
        static = _static_keys(material.secrets)
        creds = static or aws_credentials.AMBIENT
        identity = f"static-keys:{static.access_key_id}" if static else "ambient"
        if static is None:
            await _require_ambient(spec)
        if spec.role:
            creds, expires_at = await _assume_role(spec, creds, spec.role, session_name)
            identity = spec.role
    for role in spec.additional_roles:
        creds, expires_at = await _assume_role(spec, creds, role, session_name)
        identity = role
    return Session(identity=identity, expires_at=expires_at, credentials=creds)


def _text(secrets: Mapping[str, bytes], field: str) -> str | None:
    raw = secrets.get(field)
    if raw is None:
        return None
    try:
        # Keys never hold whitespace; a trailing newline from `echo > file` is common.
        return raw.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise ProviderConfigError(
            f"{_FIELD}.auth.secretRef.{field}: the referenced Secret key is not UTF-8 text"
        ) from None


def _static_keys(secrets: Mapping[str, bytes]) -> aws_credentials.AwsCredentials | None:
    key_id = _text(secrets, "accessKeyId")
    secret = _text(secrets, "secretAccessKey")
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        missing = "accessKeyId" if key_id is None else "secretAccessKey"
        raise ProviderConfigError(
            f"{_FIELD}.auth.secretRef.{missing}: missing or empty; static keys need both "
            "accessKeyId and secretAccessKey"
        )
    return aws_credentials.AwsCredentials(
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=_text(secrets, "sessionToken"),
    )


def _session_name(token: str) -> str:
    """A RoleSessionName naming the ServiceAccount, so CloudTrail shows who read.

    Only the token's `sub` claim is read (no verification: STS verifies the token);
    the signature, which makes the token a credential, is never used.
    """
    subject = ""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:  # not base64, not UTF-8 or not JSON: just no subject to name
            claims = None
        if isinstance(claims, dict) and isinstance(claims.get("sub"), str):
            subject = claims["sub"].removeprefix(_SA_SUBJECT).replace(":", ".")
    name = _SESSION_NAME_BAD.sub("-", f"secretsync-{subject}" if subject else "secretsync-sa")
    return name[:_SESSION_NAME_LIMIT]


def _temporary(creds: CredentialsTypeDef) -> tuple[aws_credentials.AwsCredentials, float]:
    return (
        aws_credentials.AwsCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
        ),
        creds["Expiration"].timestamp(),
    )


async def _assume_role_with_web_identity(
    spec: AwsIdentity, token: str, session_name: str
) -> tuple[aws_credentials.AwsCredentials, float]:
    role = spec.role or ""

    def call() -> CredentialsTypeDef:
        sts = aws_credentials.unsigned_sts_client(spec)
        try:
            return sts.assume_role_with_web_identity(
                RoleArn=role, WebIdentityToken=token, RoleSessionName=session_name
            )["Credentials"]
        finally:
            sts.close()

    return _temporary(await _sts_call("AssumeRoleWithWebIdentity", role, call))


async def _assume_role(
    spec: AwsIdentity, creds: aws_credentials.Credentials, role: str, session_name: str
) -> tuple[aws_credentials.AwsCredentials, float]:
    def call() -> CredentialsTypeDef:
        sts = aws_credentials.sts_client(creds, spec)
        try:
            return sts.assume_role(RoleArn=role, RoleSessionName=session_name)["Credentials"]
        finally:
            sts.close()

    return _temporary(await _sts_call("AssumeRole", role, call))


async def _require_ambient(spec: AwsIdentity) -> None:
    """Fail at login, not at the first read, when the operator has no identity of its own."""

    def resolve() -> bool:
        return aws_credentials.ambient_available(spec)

    if not await _sts_call("default credential chain", None, resolve):
        raise ProviderAuthError(
            f"{_FIELD}.auth: not set and the operator has no ambient AWS credentials; "
            "set auth.serviceAccount or auth.secretRef"
        )


async def _sts_call(operation: str, role: str | None, call: Callable[[], T]) -> T:
    """Run one login step in a worker thread; its error is raised outside the `except`
    block so that it carries no link to the SDK's exception text."""
    try:
        return await asyncio.to_thread(call)
    except (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError, ValueError) as exc:
        failure = errors.translate(exc, operation=operation, key=role)
    raise failure
