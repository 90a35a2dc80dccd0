"""One SecretsClient's access to the SDK: lazily built clients, calls run off the event loop,
each passed through the engine's gate (budget, circuit, metrics) and its errors translated."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from botocore import exceptions as botocore_exceptions

from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
)
from secretsync.models.remote import CallGate
from secretsync.models.store import AwsIdentity
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.aws import errors

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

ClientT = TypeVar("ClientT")
ResultT = TypeVar("ResultT")
ItemT = TypeVar("ItemT")

# Calls one client may have in flight at once (per-key calls such as DescribeSecret);
# the engine's per-store budget limits the rate, this limits the burst and the threads.
CONCURRENCY = 8
# The SDK's blocking calls run on threads of their own, not on the event loop's default
# executor (cpu + 4 threads in all): with CONCURRENCY per client, one slow identity or
# endpoint holds at most 8 of them, and the others keep their latency. One pool for the
# process (created on first use), so that identities coming and going do not start and
# stop threads (whose malloc arenas would stay behind).
THREADS = 64
_pool: list[concurrent.futures.ThreadPoolExecutor] = []


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    if not _pool:
        _pool.append(concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="aws"))
    return _pool[0]


class Api(Generic[ClientT]):
    """The SDK clients of one SecretsClient, built once on first use."""

    def __init__(
        self,
        *,
        spec: AwsIdentity,
        credentials: aws_credentials.Credentials,
        make: Callable[[aws_credentials.Credentials, AwsIdentity], ClientT],
        gate: CallGate,
    ) -> None:
        self._spec = spec
        self._credentials = credentials
        self._make = make
        self._gate = gate
        self._lock = asyncio.Lock()
        self._client: ClientT | None = None
        self._sts: STSClient | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def _build(
        self, make: Callable[[aws_credentials.Credentials, AwsIdentity], ResultT]
    ) -> ResultT:
        """Build an SDK object off the event loop (the SDK reads its data files)."""
        try:
            return await asyncio.to_thread(make, self._credentials, self._spec)
        except (botocore_exceptions.BotoCoreError, ValueError) as exc:
            # A malformed endpoint URL or region; the SDK's text would only repeat them.
            failure = ProviderConfigError(
                f"spec.provider.aws: cannot build an SDK client for region {self._spec.region!r} "
                f"and endpoint {self._spec.endpoint!r} ({type(exc).__name__})"
            )
        raise failure

    async def client(self) -> ClientT:
        """The service client, built on first use."""
        async with self._lock:
            if self._client is None:
                self._client = await self._build(self._make)
            return self._client

    async def sts(self) -> STSClient:
        """An STS client signing with the same credentials, built on first use."""
        async with self._lock:
            if self._sts is None:
                self._sts = await self._build(aws_credentials.sts_client)
            return self._sts

    async def call(
        self, operation: str, request: Callable[[], ResultT], *, key: str | None = None
    ) -> ResultT:
        """Run one SDK call in a worker thread, through the gate, and translate its errors.

        `key` names the remote key (or batch) in error messages. The translated error is
        raised outside the `except` block so that it carries no link to the SDK's
        exception, whose text may quote the request.
        """
        await self._gate.enter(operation)
        # What the gate hears if the call never finishes (the round was cancelled): an
        # error, but not one that says anything about the provider's health.
        error: ProviderError | None = ProviderError(f"AWS {operation} did not complete")
        try:
            async with self._limit:
                try:
                    loop = asyncio.get_running_loop()
                    result = await loop.run_in_executor(_threads(), request)
                except (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError) as exc:
                    error = errors.translate(exc, operation=operation, key=key)
                else:
                    error = None
                    return result
        finally:
            self._gate.leave(operation, error)
        raise error

    async def validate(self) -> None:
        """Prove the credentials work: STS GetCallerIdentity needs no permission at all."""
        sts = await self.sts()
        await self.call("GetCallerIdentity", sts.get_caller_identity)

    async def close(self) -> None:
        """Close the SDK clients' connection pools."""
        async with self._lock:
            for client in (self._client, self._sts):
                close = getattr(client, "close", None)
                if close is not None:
                    await asyncio.to_thread(close)
            self._client = self._sts = None


def chunks(items: Sequence[ItemT], size: int) -> Iterator[Sequence[ItemT]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def gather_each(
    items: Iterable[ItemT], run: Callable[[ItemT], Awaitable[ResultT]]
) -> list[ResultT | ProviderError]:
    """Run `run` for every item concurrently; a ProviderError becomes that item's result."""

    async def one(item: ItemT) -> ResultT | ProviderError:
        try:
            return await run(item)
        except ProviderError as error:
            return error

    return list(await asyncio.gather(*(one(item) for item in items)))


def raise_session_errors(results: Iterable[object]) -> None:
    """Raise the first error that concerns the session or the service rather than one ref.

    AWS being down or throttling, or refusing the credentials, is no property of a
    key: the engine must see it as such (back off, or log in again) instead of
    reporting it against every key.
    """
    for result in results:
        if isinstance(result, ProviderUnavailableError) or (
            isinstance(result, ProviderAuthError) and not isinstance(result, AccessDeniedError)
        ):
            raise result
