"""Error answers as AWS and Vault really send them, for the fault proxy to return.

Each shape is what the SDKs parse: botocore reads a JSON-protocol error's code from
`__type` (the x-amzn-ErrorType header is what the service also sends; botocore falls back
on the status code when both are missing), a query-protocol error from
`<ErrorResponse><Error><Code>`, and a 5xx with an HTML or empty body as a generic error
whose code is the status itself. hvac raises by status alone and keeps the `errors` list.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from xml.sax.saxutils import escape

# How a request reached the proxy, which decides the shape of an error answer.
AWS_JSON = "aws-json"  # X-Amz-Target: Secrets Manager, SSM, SQS (botocore >= 1.31), Events
AWS_QUERY = "aws-query"  # form-encoded Action=: STS (and SQS from older SDKs)
VAULT = "vault"  # /v1/...: OpenBao / Vault


@dataclasses.dataclass(frozen=True)
class Answer:
    """A complete HTTP answer the proxy sends instead of forwarding."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def retry_after_value(retry_after: float | str) -> str:
    """A Retry-After header value: seconds as given (RFC 9110 wants whole seconds; a
    fraction is allowed here to keep tests short), or a string (an HTTP date) verbatim."""
    if isinstance(retry_after, str):
        return retry_after
    return f"{retry_after:g}"


def aws_error(
    kind: str,
    *,
    code: str,
    status: int,
    message: str,
    sender: bool,
    content_type: str = "application/x-amz-json-1.1",
    retry_after: float | str | None = None,
) -> Answer:
    """An AWS service error in the protocol the request used. With retry_after, both the
    HTTP `Retry-After` header (seconds) and botocore's `x-amz-retry-after` (milliseconds,
    which its standard retry mode waits for) are sent."""
    request_id = str(uuid.uuid4())
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("Retry-After", retry_after_value(retry_after)))
        if not isinstance(retry_after, str):
            headers.append(("x-amz-retry-after", str(int(retry_after * 1000))))
    if kind == AWS_QUERY:
        body = (
            "<ErrorResponse>"
            f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type>"
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers += [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        return Answer(status, tuple(headers), body)
    body = json.dumps({"__type": code, "message": message}).encode()
    headers += [
        ("Content-Type", content_type),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", code),
    ]
    return Answer(status, tuple(headers), body)


def vault_error(
    status: int, errors: tuple[str, ...], *, retry_after: float | str | None = None
) -> Answer:
    """A Vault error: the status carries the meaning, the body is {"errors": [...]}."""
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if retry_after is not None:
        headers.append(("Retry-After", retry_after_value(retry_after)))
    return Answer(status, tuple(headers), json.dumps({"errors": list(errors)}).encode())


def gateway_error(status: int) -> Answer:
    """What a load balancer in front of a service sends: an HTML page, no protocol body
    (botocore's generic error path; hvac goes by the status)."""
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(
        status, "Error"
    )
    body = f"<html><body><h1>{status} {reason}</h1></body></html>".encode()
    return Answer(status, (("Content-Type", "text/html"),), body)


def throttle_code(kind: str, service: str) -> str:
    """What a service calls being throttled: `Throttling` in the query protocol,
    `ThrottlingException` in JSON ones, except SQS, whose model names `RequestThrottled`.
    All three are in botocore's list of throttling codes (retries.standard)."""
    if kind == AWS_QUERY:
        return "Throttling"
    return "RequestThrottled" if service == "AmazonSQS" else "ThrottlingException"


# AWS's codes for its own server faults, by status (anything else is a gateway's answer).
AWS_SERVER_CODES = {500: "InternalFailure", 503: "ServiceUnavailable"}
VAULT_SERVER_ERRORS = {
    500: ("1 error occurred:\n\t* internal error\n\n",),
    503: ("Vault is sealed",),
}
