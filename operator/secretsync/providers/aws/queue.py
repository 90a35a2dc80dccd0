"""A store's SQS event queue (fed by EventBridge) behind the EventQueue protocol.

Built like the store's other clients: the store's endpoint and region, the session's
credentials, every call reported to the observer and its errors translated by
`errors.translate` (no SDK text, which may quote a message, reaches our errors).

The long poll runs in a daemon thread of its own rather than in the event loop's
worker pool: a pool thread blocked in a 20 s ReceiveMessage would hold the
operator's exit for as long, since the pool is joined at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from botocore import exceptions as botocore_exceptions

from secretsync.errors import ProviderError
from secretsync.models.remote import CallObserver, ObservingGate
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import api, errors
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.base import QueueMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        DeleteMessageBatchResultTypeDef,
        ReceiveMessageResultTypeDef,
    )

RECEIVE_LIMIT = 10  # ReceiveMessage's MaxNumberOfMessages ceiling
DELETE_BATCH = 10  # DeleteMessageBatch's limit on Entries
MAX_WAIT = 20  # WaitTimeSeconds ceiling

T = TypeVar("T")


class SqsQueue:
    """An SQS queue read as one session."""

    def __init__(
        self,
        *,
        spec: AwsProvider,
        credentials: aws_credentials.Credentials,
        queue_url: str,
        observe: CallObserver,
    ) -> None:
        self._url = queue_url
        self._observe = observe
        self._api: api.Api[SQSClient] = api.Api(
            spec=spec,
            credentials=credentials,
            make=aws_credentials.sqs_client,
            # Long polls are not refreshes: no budget, no circuit, only the metrics.
            gate=ObservingGate(observe),
        )

    @property
    def url(self) -> str:
        return self._url

    async def receive(self, *, wait_seconds: int) -> Sequence[QueueMessage]:
        """Long-poll for up to 10 messages; an empty list after wait_seconds."""
        client = await self._api.client()
        request = functools.partial(
            client.receive_message,
            QueueUrl=self._url,
            MaxNumberOfMessages=RECEIVE_LIMIT,
            WaitTimeSeconds=max(0, min(MAX_WAIT, wait_seconds)),
        )
        answer: ReceiveMessageResultTypeDef = await self._long_call("ReceiveMessage", request)
        return [
            QueueMessage(id=m["MessageId"], receipt=m["ReceiptHandle"], body=m.get("Body", ""))
            for m in answer.get("Messages", [])
            if m.get("MessageId") and m.get("ReceiptHandle")
        ]

    async def delete(self, messages: Sequence[QueueMessage]) -> None:
        """Delete the messages, ten per DeleteMessageBatch; raises if any was not deleted
        (it will then be delivered again, which is harmless)."""
        client = await self._api.client()
        failed = 0
        for batch in api.chunks(messages, DELETE_BATCH):
            # Entry ids only pair answers with entries; positions are unique in a batch.
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(batch)
            ]
            answer: DeleteMessageBatchResultTypeDef = await self._api.call(
                "DeleteMessageBatch",
                functools.partial(client.delete_message_batch, QueueUrl=self._url, Entries=entries),
                key=self._url,
            )
            failed += len(answer.get("Failed", []))
        if failed:
            raise ProviderError(
                f"AWS DeleteMessageBatch of {self._url!r}: {failed} of {len(messages)} messages "
                "were not deleted"
            )

    async def close(self) -> None:
        """Close the SDK client's connections."""
        await self._api.close()

    async def _long_call(self, operation: str, request: Callable[[], T]) -> T:
        """Api.call's contract (observed, errors translated outside the `except` block so
        they carry no link to the SDK's exception) on a daemon thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, failure: BaseException | None) -> None:
            if future.done():  # the waiting task was cancelled
                return
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(result)  # type: ignore[arg-type] # T when failure is None

        def run() -> None:
            result: T | None = None
            failure: BaseException | None = None
            try:
                result = request()
            except (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError) as exc:
                failure = errors.translate(exc, operation=operation, key=self._url)
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting task, never lost
                failure = ProviderError(
                    f"AWS {operation} of {self._url!r} failed ({type(exc).__name__})"
                )
            with contextlib.suppress(RuntimeError):  # a closed loop: the operator is exiting
                loop.call_soon_threadsafe(settle, result, failure)

        threading.Thread(target=run, name=f"sqs-{operation}", daemon=True).start()
        try:
            value = await future
        except asyncio.CancelledError:
            raise  # not a call outcome: the consumer is stopping
        except BaseException:
            self._observe(operation, "error")
            raise
        self._observe(operation, "success")
        return value
