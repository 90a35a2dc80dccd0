"""The webhook over HTTP, in process, with fake clocks: status codes, what reaches the
engine, the rate limit, the key cache and rotation, metrics and logs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from secretsync.errors import KubeNotFoundError
from secretsync.events import webhook
from secretsync.metrics import Metrics

KEY = b"k" * 32
NOW = 1_700_000_000.0
MARK = "MARK-body-9d2e"  # stands for anything a body could carry
BODY = json.dumps(
    {"store": {"kind": "SecretStore", "namespace": "team-a", "name": "aws"}, "keys": [MARK]}
).encode()


@dataclasses.dataclass
class Fake:
    """The webhook's collaborators: a key Secret, the engine, two clocks."""

    key: bytes = KEY
    key_error: bool = False
    loads: int = 0
    matched: int | None = 1
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wall: float = NOW
    mono: float = 1000.0
    metrics: Metrics = dataclasses.field(default_factory=Metrics)

    async def load_key(self) -> bytes:
        self.loads += 1
        if self.key_error:
            raise KubeNotFoundError("Secret ops/webhook does not exist")
        return self.key

    def notify(
        self, *, kind: str, namespace: str, name: str, keys: Sequence[str], source: str
    ) -> int | None:
        self.calls.append(
            {"kind": kind, "namespace": namespace, "name": name, "keys": list(keys), "src": source}
        )
        return self.matched

    def hook(self, **limits: Any) -> webhook.Webhook:
        return webhook.Webhook(
            load_key=self.load_key,
            notify=self.notify,
            metrics=self.metrics,
            limits=webhook.Limits(**limits),
            key_source="Secret ops/webhook",
            clock=lambda: self.wall,
            monotonic=lambda: self.mono,
        )

    def discarded(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "secretsync_events_discarded_total", {"source": "webhook", "reason": reason}
        )
        return value or 0.0

    def counted(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(
            f"secretsync_events_{name}_total", {"source": "webhook"}
        )
        return value or 0.0


Scenario = Callable[[TestClient[Any, Any]], Awaitable[None]]


def serve(hook: webhook.Webhook, scenario: Scenario) -> None:
    async def main() -> None:
        async with TestClient(TestServer(hook.application())) as client:
            await scenario(client)

    asyncio.run(main())


def signed(body: bytes = BODY, *, key: bytes = KEY, at: float = NOW) -> dict[str, str]:
    return {webhook.HEADER: webhook.sign(key, body, timestamp=int(at))}


async def post(
    client: TestClient[Any, Any], body: Any = BODY, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    resp = await client.post(webhook.PATH, data=body, headers=headers or {})
    return resp.status, await resp.json(), dict(resp.headers)


def test_a_signed_notification_reaches_the_engine_and_answers_202_with_the_count() -> None:
    fake = Fake(matched=3)

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await post(client, headers=signed()))[:2] == (202, {"matched": 3})

    serve(fake.hook(), scenario)
    assert fake.calls == [
        {
            "kind": "SecretStore",
            "namespace": "team-a",
            "name": "aws",
            "keys": [MARK],
            "src": "webhook",
        }
    ]
    assert (fake.counted("received"), fake.counted("matched")) == (1, 1)


def test_a_known_store_with_no_reader_is_accepted_and_counted_unmatched() -> None:
    fake = Fake(matched=0)

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await post(client, headers=signed()))[:2] == (202, {"matched": 0})

    serve(fake.hook(), scenario)
    assert (fake.counted("matched"), fake.discarded("unmatched")) == (0, 1)


def test_an_async_notify_is_awaited() -> None:
    fake = Fake()

    async def notify(**kwargs: Any) -> int | None:
        await asyncio.sleep(0)
        return 2

    hook = webhook.Webhook(load_key=fake.load_key, notify=notify, metrics=fake.metrics)

    async def scenario(client: TestClient[Any, Any]) -> None:
        headers = signed(at=time.time())  # the real clock
        assert (await post(client, headers=headers))[:2] == (202, {"matched": 2})

    serve(hook, scenario)


def test_an_unknown_store_is_404_and_counted() -> None:
    fake = Fake(matched=None)

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, doc, _ = await post(client, headers=signed())
        assert status == 404
        assert "knows no store of that kind, namespace and name" in doc["error"]

    serve(fake.hook(), scenario)
    assert fake.discarded("unknown-store") == 1


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "bad-signature"),
        (signed(key=b"x" * 32), 401, "bad-signature"),
        (signed(at=NOW - 301), 401, "stale"),
        (signed(at=NOW + 301), 401, "stale"),
    ],
    ids=["no-header", "wrong-key", "old", "future"],
)
def test_unauthenticated_requests_are_401_and_reach_nothing(
    headers: dict[str, str], status: int, reason: str
) -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        code, doc, _ = await post(client, headers=headers)
        assert code == status
        assert MARK not in json.dumps(doc)

    serve(fake.hook(), scenario)
    assert fake.calls == []
    assert fake.discarded(reason) == 1


def test_a_malformed_signed_body_is_400_without_quoting_it() -> None:
    fake = Fake()
    body = json.dumps({"store": {"kind": MARK}, "keys": [MARK]}).encode()

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, doc, _ = await post(client, body, signed(body))
        assert status == 400
        assert doc == {"error": "store.kind must be SecretStore or ClusterSecretStore"}

    serve(fake.hook(), scenario)
    assert fake.calls == []
    assert fake.discarded("malformed") == 1


def test_a_malformed_unsigned_body_is_401_not_400() -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await post(client, b"{nope"))[0] == 401

    serve(fake.hook(), scenario)
    assert fake.discarded("bad-signature") == 1


def test_an_oversized_body_is_413_before_the_key_is_read() -> None:
    fake = Fake()
    big = b'{"pad": "' + b"x" * 2000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield big[:600]

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await post(client, big, signed(big)))[:2] == (
            413,
            {"error": "the body is over 1024 bytes"},
        )
        # Without Content-Length (chunked), the limit holds while reading.
        assert (await post(client, chunks(), signed(big)))[0] == 413
        small = b'{"pad": "' + b"x" * 1000 + b'"}'  # 1011 bytes: under the limit
        assert (await post(client, small, signed(small)))[0] == 400

    serve(fake.hook(max_body=1024), scenario)
    assert fake.discarded("too-large") == 2
    assert fake.loads == 1  # only for the small body
    assert fake.calls == []


def test_a_declared_oversized_body_is_refused_without_waiting_for_it() -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            f"POST {webhook.PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()
        )
        await writer.drain()
        # The body never comes: only a refusal made from the header answers in time.
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 413")

    serve(fake.hook(max_body=1024), scenario)
    assert fake.discarded("too-large") == 1


def test_over_the_rate_requests_are_429_without_any_signature_work() -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        codes = [(await post(client, headers=signed()))[0] for _ in range(3)]
        assert codes == [202, 202, 202]
        status, doc, headers = await post(client, headers=signed())
        assert (status, headers["Retry-After"]) == (429, "1")
        assert doc == {"error": "too many requests; retry later"}
        assert (await post(client, headers={}))[0] == 429  # refused before the header is read
        fake.mono += 0.5  # half a token at 2/s: one more
        assert (await post(client, headers=signed()))[0] == 202
        assert (await post(client, headers=signed()))[0] == 429

    serve(fake.hook(rate=2.0, burst=3), scenario)
    assert len(fake.calls) == 4
    assert fake.discarded("rate-limited") == 3
    assert fake.loads == 1


def test_the_key_is_read_once_and_reused_until_its_ttl() -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        for _ in range(5):
            assert (await post(client, headers=signed()))[0] == 202
        assert fake.loads == 1
        fake.mono += 31
        assert (await post(client, headers=signed()))[0] == 202
        assert fake.loads == 2

    serve(fake.hook(), scenario)


def test_a_rotated_key_works_at_once_and_the_old_key_stops_working() -> None:
    fake = Fake()
    new = b"n" * 32

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await post(client, headers=signed()))[0] == 202
        fake.key = new
        fake.mono += 2  # within the 30 s the old key would be cached
        assert (await post(client, headers=signed(key=new)))[0] == 202
        assert fake.loads == 2  # re-read on the mismatch
        fake.mono += 2
        assert (await post(client, headers=signed(key=KEY)))[0] == 401

    serve(fake.hook(), scenario)


def test_bad_signatures_re_read_the_key_at_most_once_a_second() -> None:
    fake = Fake()

    async def scenario(client: TestClient[Any, Any]) -> None:
        for _ in range(10):
            assert (await post(client, headers=signed(key=b"x" * 32)))[0] == 401
        assert fake.loads == 1
        fake.mono += 1.5
        for _ in range(10):
            assert (await post(client, headers=signed(key=b"x" * 32)))[0] == 401
        assert fake.loads == 2

    serve(fake.hook(), scenario)


@pytest.mark.parametrize(
    ("problem", "logged"),
    [
        ("missing", "Secret ops/webhook does not exist"),
        ("short", "the webhook key is shorter than 16 bytes"),
    ],
)
def test_a_missing_or_short_key_is_503_and_read_again_later(
    problem: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = Fake(key_error=problem == "missing", key=b"short" if problem == "short" else KEY)

    async def scenario(client: TestClient[Any, Any]) -> None:
        status, doc, _ = await post(client, headers=signed())
        assert (status, doc) == (
            503,
            {"error": "the webhook key is not available; see the operator log"},
        )
        assert (await post(client, headers=signed()))[0] == 503
        assert fake.loads == 1  # a failure is remembered for a second
        fake.key_error, fake.key = False, KEY
        fake.mono += 1.5
        assert (await post(client, headers=signed()))[0] == 202

    with caplog.at_level(logging.INFO, logger="secretsync.webhook"):
        serve(fake.hook(), scenario)
    assert f"cannot use the key in Secret ops/webhook: {logged}" in caplog.text
    assert fake.discarded("key-unavailable") == 2


def test_logs_never_hold_the_body_a_signature_or_the_key(caplog: pytest.LogCaptureFixture) -> None:
    fake = Fake()
    headers = signed()
    bad = json.dumps({"store": {"kind": MARK}, "keys": [MARK]}).encode()

    async def scenario(client: TestClient[Any, Any]) -> None:
        await post(client, headers=headers)
        await post(client, headers=signed(key=b"x" * 32))
        await post(client, bad, signed(bad))
        await post(client, b"x" * 70_000, signed(b"x" * 70_000))
        fake.matched = None
        await post(client, headers=headers)

    with caplog.at_level(logging.DEBUG):
        serve(fake.hook(), scenario)
    text = caplog.text
    assert "SecretStore team-a/aws reports 1 changed remote key(s); 1 SecretSync(s) due" in text
    assert "with 401 (bad-signature)" in text
    for needle in (MARK, headers[webhook.HEADER].split("v1=")[1], KEY.decode(), "xxxxxxxx"):
        assert needle not in text


def test_start_serves_on_a_port_even_before_the_key_exists_and_stop_frees_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = Fake(key_error=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        runner = await webhook.start(
            port=port,
            host="127.0.0.1",
            load_key=fake.load_key,
            notify=fake.notify,
            metrics=fake.metrics,
            key_source="Secret ops/webhook",
        )
        try:
            with pytest.raises(OSError, match="address already in use"):
                await webhook.start(
                    port=port,
                    host="127.0.0.1",
                    load_key=fake.load_key,
                    notify=fake.notify,
                    metrics=fake.metrics,
                )
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}{webhook.PATH}"
                async with session.post(url, data=BODY, headers=signed()) as resp:
                    assert resp.status == 503
                async with session.get(url) as resp:
                    assert resp.status == 405
        finally:
            await webhook.stop(runner)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free again

    with caplog.at_level(logging.INFO, logger="secretsync.webhook"):
        asyncio.run(main())
    assert "cannot use the key in Secret ops/webhook yet" in caplog.text
    assert f"listening on 127.0.0.1:{port}/v1/notify" in caplog.text
