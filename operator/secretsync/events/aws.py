"""AWS change events, as EventBridge delivers them to an SQS queue, turned into remote keys.

Pure: no SDK, no I/O. `parse` reads one SQS message body and answers either the
remote keys that changed (`Changed`) or why the message is not for this store
(`Discarded`). It never raises, and neither result carries anything from the
body that could be a secret: the keys are names and ARNs only.

What is understood (shapes from the AWS Secrets Manager, Systems Manager and
EventBridge documentation):

- `source: aws.secretsmanager`, `detail-type: AWS API Call via CloudTrail`, a
  `detail.eventName` of PutSecretValue, UpdateSecret, UpdateSecretVersionStage,
  RotateSecret, DeleteSecret, RestoreSecret or CreateSecret (a new secret may
  be what a failing or `find` SecretSync waits for). The secret is named by
  `detail.requestParameters.secretId` (a name, a partial or a full ARN; `name`
  for CreateSecret), `detail.responseElements.arn` (spelled `aRN` and `ARN`
  in older records) and `detail.resources[].ARN`. A record with an
  `errorCode` is a call that failed and changed nothing.
- `source: aws.secretsmanager`, `detail-type: AWS Service Event via CloudTrail`,
  `eventName` RotationSucceeded or EndSecretDeletion: the secret is in
  `detail.additionalEventData.SecretId` (seen as `serviceEventDetails.secretId`
  too) or `detail.responseElements.arn`.
- `source: aws.secretsmanager`, `detail-type: Secret Label Updated` (the native
  event, no CloudTrail needed): `detail.name` and the secret's ARN in `resources`.
- `source: aws.ssm`, `detail-type: Parameter Store Change`: `detail.name` and
  the parameter's ARN in `resources` (built from the name when absent); a
  `detail.exception` marks an operation that failed.
- `source: aws.ssm`, `detail-type: AWS API Call via CloudTrail`, `eventName`
  PutParameter, DeleteParameter(s), LabelParameterVersion or
  UnlabelParameterVersion: `detail.requestParameters.name` or `.names`.
- An SNS notification wrapping one of these (EventBridge -> SNS -> SQS without
  raw delivery) is unwrapped once.

Which account and region belong to a store (see `store_account`): the region is
the store's `spec.provider.aws.region`; the account is the one in the ARN of
the last role the store assumes (`additionalRoles[-1]`, else `role`). A store
without a role (static keys or the operator's ambient identity, no role) has
no account the operator can know without an STS call, so any account is
accepted and the queue's own access policy is the boundary. Either way an
event is kept only if its `region` is the store's, its `account` is the
store's (when known), and every secret or parameter ARN inside it names that
same region and that same account as the event itself: a record about another
account's or region's secret is discarded, whatever envelope it came in.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

Service = Literal["SecretsManager", "ParameterStore"]
DiscardReason = Literal["malformed", "foreign-account", "foreign-region", "irrelevant"]

SECRETS_MANAGER = "aws.secretsmanager"
SSM = "aws.ssm"
API_CALL = "AWS API Call via CloudTrail"
SERVICE_EVENT = "AWS Service Event via CloudTrail"
LABEL_UPDATED = "Secret Label Updated"
PARAMETER_CHANGE = "Parameter Store Change"

SECRET_API_CALLS = frozenset(
    {
        "PutSecretValue",
        "UpdateSecret",
        "UpdateSecretVersionStage",
        "RotateSecret",
        "DeleteSecret",
        "RestoreSecret",
        "CreateSecret",
    }
)
SECRET_SERVICE_EVENTS = frozenset({"RotationSucceeded", "EndSecretDeletion"})
PARAMETER_API_CALLS = frozenset(
    {
        "PutParameter",
        "DeleteParameter",
        "DeleteParameters",
        "LabelParameterVersion",
        "UnlabelParameterVersion",
    }
)

_SOURCES: Mapping[Service, str] = {"SecretsManager": SECRETS_MANAGER, "ParameterStore": SSM}
_EVENT_SOURCES = {SECRETS_MANAGER: "secretsmanager.amazonaws.com", SSM: "ssm.amazonaws.com"}
# SQS takes bodies up to 1 MiB; anything larger is not an EventBridge event.
MAX_BODY = 1024 * 1024
MAX_KEY = 2048  # Secrets Manager ARNs stay far below; SSM names are at most 1011 characters
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# arn:<partition>:iam::<account>:role/<path/name>
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>[0-9]{12}):role/.+$")


@dataclasses.dataclass(frozen=True, slots=True)
class Changed:
    """Remote keys (names and ARNs, as AWS spells them) that the event says changed."""

    keys: tuple[str, ...]
    event: str  # eventName, operation or detail-type: AWS's own word for what happened


@dataclasses.dataclass(frozen=True, slots=True)
class Discarded:
    """Why a message is not acted on; the message itself is never kept or logged."""

    reason: DiscardReason


Parsed = Changed | Discarded


class _Discard(Exception):  # noqa: N818 - internal control flow, never escapes parse()
    def __init__(self, reason: DiscardReason) -> None:
        super().__init__(reason)
        self.reason: DiscardReason = reason


def store_account(role: str | None, additional_roles: Iterable[str] = ()) -> str | None:
    """The account a store reads in: that of the last role it assumes, or None (unknown)."""
    chain = [role, *additional_roles]
    last = next((r for r in reversed(chain) if r), None)
    if last is None:
        return None
    match = _ROLE_ARN.match(last)
    return match.group("account") if match else None


def parse(body: str, *, service: Service | None, account: str | None, region: str) -> Parsed:
    """The keys one SQS message body says changed, or why it is discarded.

    `service` is the store's (events of the other service are irrelevant to it; None
    accepts both), `account` the store's account or None when it cannot be known,
    `region` the store's region. Never raises.
    """
    try:
        return _parse(body, service=service, account=account, region=region)
    except _Discard as discard:
        return Discarded(discard.reason)
    except (ValueError, TypeError, RecursionError):  # hostile or broken JSON
        return Discarded("malformed")


def _parse(body: str, *, service: Service | None, account: str | None, region: str) -> Parsed:
    event = _event(body)
    source = _text(event, "source")
    detail_type = _text(event, "detail-type")
    event_account = _text(event, "account")
    event_region = _text(event, "region")
    detail = event.get("detail")
    if not isinstance(detail, dict) or not _ACCOUNT.match(event_account):
        raise _Discard("malformed")
    if account is not None and event_account != account:
        raise _Discard("foreign-account")
    if event_region != region:
        raise _Discard("foreign-region")
    if service is not None and source != _SOURCES[service]:
        raise _Discard("irrelevant")
    if source == SECRETS_MANAGER:
        what, keys = _secret_keys(detail_type, detail, event)
    elif source == SSM:
        what, keys = _parameter_keys(detail_type, detail, event, event_account, event_region)
    else:
        raise _Discard("irrelevant")
    unique = tuple(dict.fromkeys(_checked(keys, source, event_account, event_region)))
    if not unique:
        raise _Discard("malformed")  # a change of nothing: the record lost its subject
    return Changed(keys=unique, event=what)


def _event(body: str) -> dict[str, object]:
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise _Discard("malformed")
    event = json.loads(body)
    if not isinstance(event, dict):
        raise _Discard("malformed")
    # EventBridge -> SNS -> SQS without raw message delivery: the event is the SNS
    # notification's Message. Unwrapped once; a notification of a notification is not.
    if event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        event = json.loads(str(event["Message"]))
        if not isinstance(event, dict):
            raise _Discard("malformed")
    return event


def _text(mapping: Mapping[str, object], field: str) -> str:
    value = mapping.get(field)
    if not isinstance(value, str) or not value:
        raise _Discard("malformed")
    return value


def _api_call(detail: Mapping[str, object], source: str, names: frozenset[str]) -> str:
    """The eventName of a CloudTrail record of a change that happened, or a discard."""
    name = detail.get("eventName")
    if not isinstance(name, str) or detail.get("eventSource") != _EVENT_SOURCES[source]:
        raise _Discard("malformed")
    if name not in names or detail.get("errorCode"):
        raise _Discard("irrelevant")  # a read (GetSecretValue...), or a call that failed
    return name


def _secret_keys(
    detail_type: str, detail: Mapping[str, object], event: Mapping[str, object]
) -> tuple[str, list[object]]:
    request = _mapping(detail.get("requestParameters"))
    response = _mapping(detail.get("responseElements"))
    arns = [v for k, v in response.items() if k.lower() == "arn"]
    if detail_type == API_CALL:
        name = _api_call(detail, SECRETS_MANAGER, SECRET_API_CALLS)
        keys = [request.get("secretId"), *arns, *_record_resources(detail)]
        if name == "CreateSecret":
            keys.append(request.get("name"))
        return name, keys
    if detail_type == SERVICE_EVENT:
        name = _api_call(detail, SECRETS_MANAGER, SECRET_SERVICE_EVENTS)
        extra = _mapping(detail.get("additionalEventData"))
        service = _mapping(detail.get("serviceEventDetails"))
        keys = [extra.get("SecretId"), service.get("secretId"), *arns]
        return name, [*keys, *_record_resources(detail)]
    if detail_type == LABEL_UPDATED:
        return detail_type, [detail.get("name"), *_event_resources(event)]
    raise _Discard("irrelevant")


def _parameter_keys(
    detail_type: str,
    detail: Mapping[str, object],
    event: Mapping[str, object],
    account: str,
    region: str,
) -> tuple[str, list[object]]:
    if detail_type == PARAMETER_CHANGE:
        operation = detail.get("operation")
        if not isinstance(operation, str) or not operation:
            raise _Discard("malformed")
        if detail.get("exception"):
            raise _Discard("irrelevant")  # the operation failed: nothing changed
        name = detail.get("name")
        keys: list[object] = [name, *_event_resources(event)]
        if isinstance(name, str) and name:
            keys.append(_parameter_arn(name, account, region))
        return operation, keys
    if detail_type == API_CALL:
        call = _api_call(detail, SSM, PARAMETER_API_CALLS)
        request = _mapping(detail.get("requestParameters"))
        names = request.get("names")
        many = list(names) if isinstance(names, list) else []
        return call, [request.get("name"), *many]
    raise _Discard("irrelevant")


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _record_resources(detail: Mapping[str, object]) -> Iterator[object]:
    """ARNs of a CloudTrail record's `resources` ([{"ARN": ..., "accountId": ...}])."""
    resources = detail.get("resources")
    for item in resources if isinstance(resources, list) else ():
        if isinstance(item, dict):
            yield item.get("ARN") or item.get("arn")


def _event_resources(event: Mapping[str, object]) -> Iterator[object]:
    """ARNs of an EventBridge event's top-level `resources` (a list of strings)."""
    resources = event.get("resources")
    yield from resources if isinstance(resources, list) else ()


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _parameter_arn(name: str, account: str, region: str) -> str:
    # "/team/db" -> ...:parameter/team/db; "db" -> ...:parameter/db
    return f"arn:{_partition(region)}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def _checked(keys: Iterable[object], source: str, account: str, region: str) -> Iterator[str]:
    """The usable keys: strings of sane length without control characters, and ARNs of
    this service's secrets or parameters in the event's own account and region (other
    ARNs, such as a KMS key in a CloudTrail record, are not keys)."""
    service, resource = (
        ("secretsmanager", "secret:")
        if source == SECRETS_MANAGER
        else (
            "ssm",
            "parameter/",
        )
    )
    for key in keys:
        if not isinstance(key, str) or not key:
            continue
        if len(key) > MAX_KEY or _CONTROL.search(key):
            raise _Discard("malformed")
        if not key.startswith("arn:"):
            yield key
            continue
        parts = key.split(":", 5)
        if len(parts) < 6 or parts[2] != service or not parts[5].startswith(resource):
            continue
        if parts[4] != account:
            raise _Discard("foreign-account")
        if parts[3] != region:
            raise _Discard("foreign-region")
        yield key
