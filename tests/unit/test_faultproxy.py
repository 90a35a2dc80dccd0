"""The fault proxy in front of a tiny local server, as botocore and hvac see each fault.

The SDK clients are configured as the operator configures botocore (one attempt: the
operator retries itself), except where a test shows what the SDK's own retries do.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.retries.standard
import hvac
import hvac.exceptions
import pytest
import requests

from harness import faultproxy
from harness.faultproxy import FaultProxy

TOKEN = "s.vault-token-that-must-never-be-recorded"
KEY_ONE, KEY_TWO = "AKIAFAULTTESTONE", "AKIAFAULTTESTTWO"
SECRET = "s" * 200  # long enough for a stall to cut it in the middle


class Upstream:
    """A stand-in for moto and OpenBao that answers the few calls the tests make."""

    def __init__(self) -> None:
        self.received: list[str] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.received.append(self.headers.get("X-Amz-Target") or self.path)
                if self.headers.get("X-Amz-Target"):  # Secrets Manager
                    body = json.dumps({"Name": "db", "SecretString": SECRET, "VersionId": "v1"})
                    kind = "application/x-amz-json-1.1"
                elif self.path.startswith("/v1/"):  # Vault KV v2
                    body = json.dumps({"data": {"data": {"k": SECRET}, "metadata": {"version": 1}}})
                    kind = "application/json"
                else:  # STS GetCallerIdentity
                    body = (
                        "<GetCallerIdentityResponse><GetCallerIdentityResult>"
                        "<Arn>arn:aws:iam::123456789012:user/t</Arn><UserId>U</UserId>"
                        f"<Account>123456789012</Account><Note>{SECRET}</Note>"
                        "</GetCallerIdentityResult></GetCallerIdentityResponse>"
                    )
                    kind = "text/xml"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    upstream.received.clear()
    proxy = FaultProxy(upstream.url, seed=7)
    yield proxy
    proxy.stop()


def aws(proxy: FaultProxy, service: str, *, key: str = KEY_ONE, attempts: int = 1) -> Any:
    config = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=1,
        read_timeout=0.5,
    )
    # Any: boto3's stubs only accept a literal service name.
    return cast(Any, boto3).client(
        service,
        endpoint_url=proxy.url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key="not-a-secret",
        config=config,
    )


def vault(proxy: FaultProxy) -> Any:
    return hvac.Client(url=proxy.url, token=TOKEN, timeout=0.5)


def read_secret(proxy: FaultProxy, **kwargs: Any) -> Any:
    return aws(proxy, "secretsmanager", **kwargs).get_secret_value(SecretId="db")


def read_kv(proxy: FaultProxy) -> Any:
    return vault(proxy).secrets.kv.v2.read_secret_version(
        path="team-a/db", mount_point="secret", raise_on_deleted_version=True
    )


def aws_error(call: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return cast(dict[str, Any], caught.value.response)


# --- recording -------------------------------------------------------------------------


def test_forwarded_calls_are_recorded_with_action_identity_and_a_token_hash_only(
    proxy: FaultProxy,
) -> None:
    assert read_secret(proxy)["SecretString"] == SECRET
    assert aws(proxy, "sts").get_caller_identity()["Account"] == "123456789012"
    assert read_kv(proxy)["data"]["data"] == {"k": SECRET}
    sm, sts, kv = proxy.snapshot()
    assert (sm.action, sm.kind, sm.identity) == ("GetSecretValue", "aws-json", KEY_ONE)
    assert (sts.action, sts.kind, sts.identity) == ("GetCallerIdentity", "aws-query", KEY_ONE)
    assert (kv.kind, kv.vault_path, kv.method) == ("vault", "secret/data/team-a/db", "GET")
    assert kv.identity == faultproxy.token_hash(TOKEN)
    assert TOKEN not in repr(proxy.snapshot()), "the Vault token itself is never recorded"
    assert [c.fault for c in proxy.snapshot()] == [None, None, None]


def test_calls_are_counted_per_identity_over_a_time_window(proxy: FaultProxy) -> None:
    read_secret(proxy, key=KEY_ONE)
    start = time.monotonic()
    for _ in range(3):
        read_secret(proxy, key=KEY_TWO)
    read_secret(proxy, key=KEY_ONE)
    assert proxy.per_identity(since=start) == {KEY_TWO: 3, KEY_ONE: 1}
    assert len(proxy.select(since=start, identity=KEY_ONE, action="GetSecretValue")) == 1


# --- throttling --------------------------------------------------------------------------


def test_a_throttle_is_a_throttling_exception_botocore_retries_as_a_throttle(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.inject(faultproxy.Throttle())
    response = aws_error(lambda: read_secret(proxy))
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    context = botocore.retries.standard.RetryContext(attempt_number=1, parsed_response=response)
    assert botocore.retries.standard.ThrottledRetryableChecker().is_retryable(context)
    assert upstream.received == [], "a throttled call never reaches the service"
    assert [c.fault for c in proxy.snapshot()] == ["Throttle"]


def test_a_throttle_on_the_query_protocol_is_an_xml_throttling_error(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Throttle())
    error = aws_error(lambda: aws(proxy, "sts").get_caller_identity())["Error"]
    assert (error["Code"], error["Type"]) == ("Throttling", "Sender")
    assert error["Message"] == "Rate exceeded"


def test_an_sqs_throttle_is_its_modeled_request_throttled_error(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Throttle())
    sqs = aws(proxy, "sqs")
    with pytest.raises(sqs.exceptions.RequestThrottled):
        sqs.receive_message(QueueUrl=f"{proxy.url}/123456789012/q", WaitTimeSeconds=0)
    assert proxy.snapshot()[0].service == "AmazonSQS"


def test_a_throttle_may_say_when_to_retry_in_both_headers(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Throttle(retry_after=7))
    headers = aws_error(lambda: read_secret(proxy))["ResponseMetadata"]["HTTPHeaders"]
    assert headers["retry-after"] == "7"
    assert headers["x-amz-retry-after"] == "7000", "botocore's own header, in milliseconds"


def test_a_vault_throttle_is_a_429_with_retry_after_that_hvac_raises_as_rate_limit(
    proxy: FaultProxy,
) -> None:
    proxy.inject(faultproxy.Throttle())
    with pytest.raises(hvac.exceptions.RateLimitExceeded) as caught:
        read_kv(proxy)
    assert "rate limit quota exceeded" in caught.value.errors[0]
    raw = requests.get(f"{proxy.url}/v1/secret/data/x", headers={"X-Vault-Token": TOKEN}, timeout=2)
    assert (raw.status_code, raw.headers["Retry-After"]) == (429, "1")
    assert raw.json() == {"errors": ['request path "secret/data/x": rate limit quota exceeded']}


# --- server errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable"), (502, "502")]
)
def test_server_errors_reach_botocore_with_aws_codes_or_as_a_gateway_page(
    proxy: FaultProxy, status: int, code: str
) -> None:
    proxy.inject(faultproxy.ServerError(status=status))
    response = aws_error(lambda: read_secret(proxy))
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        code,
        status,
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, hvac.exceptions.InternalServerError),
        (502, hvac.exceptions.BadGateway),
        (503, hvac.exceptions.VaultDown),
    ],
)
def test_server_errors_reach_hvac_as_its_status_exceptions(
    proxy: FaultProxy, status: int, error: type[Exception]
) -> None:
    proxy.inject(faultproxy.ServerError(status=status))
    with pytest.raises(error):
        read_kv(proxy)


def test_the_sdks_own_retries_multiply_what_the_proxy_sees(proxy: FaultProxy) -> None:
    """botocore's standard mode makes 3 attempts by default: one SDK call, three requests."""
    proxy.inject(faultproxy.ServerError(status=500))
    aws_error(lambda: read_secret(proxy, attempts=3))
    assert proxy.actions() == ["GetSecretValue"] * 3


# --- slow, reset and stalled connections ------------------------------------------------


def test_a_delay_slows_only_the_matching_calls(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Delay(1.0), vault_path="secret/")
    slow = threading.Thread(
        target=requests.get, args=(f"{proxy.url}/v1/secret/data/x",), kwargs={"timeout": 5}
    )
    began = time.monotonic()
    slow.start()
    time.sleep(0.1)
    assert read_secret(proxy)["SecretString"] == SECRET
    assert time.monotonic() - began < 0.5, "another connection waited for the delayed one"
    slow.join()
    assert time.monotonic() - began >= 1.0


def test_release_ends_a_delay_early(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Delay(30))
    threading.Timer(0.2, proxy.release).start()
    began = time.monotonic()
    assert read_secret(proxy)["SecretString"] == SECRET
    assert time.monotonic() - began < 2


def test_a_reset_is_a_closed_connection_to_both_sdks(proxy: FaultProxy, upstream: Upstream) -> None:
    proxy.inject(faultproxy.Reset())
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        read_secret(proxy)
    with pytest.raises(requests.exceptions.ConnectionError, match="reset by peer"):
        read_kv(proxy)  # hvac lets requests' exception through
    assert upstream.received == []


def test_a_reset_after_the_upstream_acted_hides_its_answer(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    proxy.inject(faultproxy.Reset(after_upstream=True))
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        read_secret(proxy)
    assert upstream.received == ["secretsmanager.GetSecretValue"]


def test_a_stalled_body_times_the_sdks_out(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Stall())
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        read_secret(proxy)
    # requests reports a timeout while reading the body as a ConnectionError, not a
    # ReadTimeout (that is only for the wait for the headers).
    with pytest.raises(requests.exceptions.ConnectionError, match="Read timed out"):
        read_kv(proxy)


def test_a_body_cut_short_is_an_empty_success_to_botocore_json_but_an_error_elsewhere(
    proxy: FaultProxy,
) -> None:
    """botocore reads bodies with enforce_content_length=False: a JSON answer cut short
    parses as an answer without its fields, not as an error."""
    proxy.inject(faultproxy.Stall(timeout=0.1))
    result = read_secret(proxy)
    assert "SecretString" not in result
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(botocore.parsers.ResponseParserError):
        aws(proxy, "sts").get_caller_identity()
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        read_kv(proxy)


# --- scoping ---------------------------------------------------------------------------


def test_a_fault_applies_to_the_next_n_matching_calls_then_stops(proxy: FaultProxy) -> None:
    rule = proxy.inject(faultproxy.Throttle(), times=2)
    for _ in range(2):
        aws_error(lambda: read_secret(proxy))
    assert read_secret(proxy)["SecretString"] == SECRET
    assert (rule.hits, rule.remaining) == (2, 0)


def test_a_fault_scoped_to_an_identity_or_action_spares_the_others(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Throttle(), identity=KEY_TWO)
    proxy.inject(faultproxy.ServerError(), action="GetCallerIdentity")
    assert read_secret(proxy, key=KEY_ONE)["SecretString"] == SECRET
    assert aws_error(lambda: read_secret(proxy, key=KEY_TWO))["Error"]["Code"] == (
        "ThrottlingException"
    )
    assert aws_error(lambda: aws(proxy, "sts").get_caller_identity())["Error"]["Code"] == (
        "InternalFailure"
    )
    assert read_kv(proxy)["data"]["data"] == {"k": SECRET}


def test_a_vault_path_prefix_scopes_a_fault_to_those_paths(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.ServerError(status=503), vault_path="auth/")
    assert read_kv(proxy)["data"]["data"] == {"k": SECRET}
    with pytest.raises(hvac.exceptions.VaultDown):
        vault(proxy).auth.kubernetes.login(role="team-a", jwt="a.b.c")


def test_the_newest_matching_rule_wins_and_clearing_it_restores_the_older(
    proxy: FaultProxy,
) -> None:
    proxy.inject(faultproxy.Throttle())
    with proxy.inject(faultproxy.ServerError(status=503)):
        assert aws_error(lambda: read_secret(proxy))["Error"]["Code"] == "ServiceUnavailable"
    assert aws_error(lambda: read_secret(proxy))["Error"]["Code"] == "ThrottlingException"
    proxy.clear()
    assert read_secret(proxy)["SecretString"] == SECRET


def test_a_probability_fails_some_calls_reproducibly_with_a_seed(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.ServerError(), probability=0.5)
    session = requests.Session()
    for _ in range(40):
        session.get(f"{proxy.url}/v1/secret/data/x", timeout=2)
    faulted = len(proxy.select(faulted=True))
    assert 10 <= faulted <= 30
    replay = FaultProxy(proxy.upstream.geturl(), seed=7)
    try:
        replay.inject(faultproxy.ServerError(), probability=0.5)
        for _ in range(40):
            session.get(f"{replay.url}/v1/secret/data/x", timeout=2)
        assert [c.fault for c in replay.snapshot()] == [c.fault for c in proxy.snapshot()]
    finally:
        replay.stop()


def test_a_predicate_selects_calls_by_anything_recorded(proxy: FaultProxy) -> None:
    proxy.inject(faultproxy.Reset(), where=lambda call: b'"db"' in call.body)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        read_secret(proxy)
    other = aws(proxy, "secretsmanager").get_secret_value(SecretId="other")
    assert other["SecretString"] == SECRET


def test_a_stopped_proxy_refuses_and_comes_back_on_the_same_port(proxy: FaultProxy) -> None:
    url = proxy.url
    proxy.stop()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        read_secret(proxy)
    proxy.start()
    assert proxy.url == url
    assert read_secret(proxy)["SecretString"] == SECRET
