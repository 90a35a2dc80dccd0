"""KMS and S3 as one AWS session, for the SOPS provider (providers/sops): a document's
data key decrypted with KMS, and documents read from S3, as the store's identity."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from secretsync.errors import DocumentRefusedError, ProviderConfigError
from secretsync.models.remote import CallGate
from secretsync.models.store import AwsIdentity
from secretsync.providers.aws import api
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.base import Session

# An encrypted document is about twice its plaintext, and a Secret holds at most 1 MiB.
MAX_OBJECT_BYTES = 4 * 2**20

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client


def session_credentials(session: Session) -> aws_credentials.Credentials:
    """The AWS credentials of a session made by `login.login`."""
    credentials = session.credentials
    if not isinstance(
        credentials, aws_credentials.AwsCredentials | aws_credentials.AmbientCredentials
    ):
        raise ProviderConfigError(f"session {session.identity!r} was not made by the aws backend")
    return credentials


class AwsKeys:
    """KMS Decrypt and S3 GetObject/HeadObject as one session, through the engine's gate."""

    def __init__(
        self, *, spec: AwsIdentity, credentials: aws_credentials.Credentials, gate: CallGate
    ) -> None:
        self._kms: api.Api[KMSClient] = api.Api(
            spec=spec, credentials=credentials, make=aws_credentials.kms_client, gate=gate
        )
        self._s3: api.Api[S3Client] = api.Api(
            spec=spec, credentials=credentials, make=aws_credentials.s3_client, gate=gate
        )

    async def decrypt(
        self, ciphertext: bytes, *, key_arn: str, context: Mapping[str, str], what: str
    ) -> bytes:
        """The plaintext of a KMS ciphertext blob (a SOPS data key). `what` names the
        document in errors."""
        client = await self._kms.client()
        request = functools.partial(
            client.decrypt,
            CiphertextBlob=ciphertext,
            KeyId=key_arn,
            EncryptionContext=dict(context),
        )
        response = await self._kms.call("Decrypt", request, key=what)
        return bytes(response["Plaintext"])

    async def get_object(self, bucket: str, key: str, *, what: str) -> tuple[bytes, str]:
        """An S3 object's bytes and ETag."""
        client = await self._s3.client()

        def read() -> tuple[bytes, str] | None:
            response = client.get_object(Bucket=bucket, Key=key)
            with response["Body"] as body:
                if response.get("ContentLength", 0) > MAX_OBJECT_BYTES:
                    return None  # not read: a document that big cannot become a Secret
                return body.read(), str(response.get("ETag", ""))

        got = await self._s3.call("GetObject", read, key=what)
        if got is None:
            raise DocumentRefusedError(
                f"{what} is over {MAX_OBJECT_BYTES // 2**20} MiB: no Secret could hold it"
            )
        return got

    async def etag(self, bucket: str, key: str, *, what: str) -> str:
        """An S3 object's ETag, without reading it (the change check)."""
        client = await self._s3.client()
        request = functools.partial(client.head_object, Bucket=bucket, Key=key)
        response = await self._s3.call("HeadObject", request, key=what)
        return str(response.get("ETag", ""))

    async def validate(self) -> None:
        """Prove the credentials work (STS GetCallerIdentity needs no permission)."""
        await self._kms.validate()

    async def close(self) -> None:
        await self._kms.close()
        await self._s3.close()
