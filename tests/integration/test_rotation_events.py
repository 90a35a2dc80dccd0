"""Rotation reaches the cluster by AWS events: EventBridge -> SQS -> the store's consumer ->
an immediate sync of exactly the SecretSyncs that read the changed keys, while their
refreshInterval is an hour.

Each test gets an SQS queue and an EventBridge bus of its own in moto, with a rule that
sends Secrets Manager and SSM events to the queue. CloudTrail does not run in moto, so
the tests put the CloudTrail-format events on the bus themselves, exactly as AWS would
after the API call they make. The store reads the queue through the recording proxy
(as its own role); the tests talk to moto directly.

moto's EventBridge leaves `account` out of the events it delivers to SQS (AWS always
sends it), so the rule's target restores AWS's own event shape with an input
transformer: the queue receives what it would receive from AWS.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import kube, scenario
from harness.awsevents import cloudtrail_detail
from harness.awsproxy import AwsRecordingProxy
from harness.devenv import REPO, DevEnv
from integration.test_aws_sync import ACCOUNT, aws_store, client, role, sync
from secretsync.errors import ProviderError
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import AwsBackend, AwsCredentials
from secretsync.providers.base import EventSourceBackend, Session

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

REGION = "eu-west-1"
FOREIGN_ACCOUNT = "210987654321"
ROTATIONS = 100
# A measurement, not a fixture: written under bench/out/ (ignored by git) on every run.
BENCH_FILE = REPO / "bench" / "out" / "rotation-latency.json"
EVENT_FIELDS = ("id", "detail-type", "source", "account", "time", "region", "resources", "detail")
# AWS's own event shape (see the module docstring).
EVENT_TEMPLATE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
    '"detail": <detail>}'
)


@dataclasses.dataclass(frozen=True)
class EventRoute:
    """A queue fed by an EventBridge rule on a bus of the test's own."""

    queue_url: str
    bus: str


@pytest.fixture
def route(env: DevEnv) -> Iterator[EventRoute]:
    sqs, events = client(env, "sqs"), client(env, "events")
    name = f"secretsync-events-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.create_event_bus(Name=name)
    events.put_rule(
        Name=name,
        EventBusName=name,
        EventPattern=json.dumps({"source": ["aws.secretsmanager", "aws.ssm"]}),
    )
    events.put_targets(
        Rule=name,
        EventBusName=name,
        Targets=[
            {
                "Id": "operator-queue",
                "Arn": queue_arn,
                "InputTransformer": {
                    "InputPathsMap": {field: f"$.{field}" for field in EVENT_FIELDS},
                    "InputTemplate": EVENT_TEMPLATE,
                },
            }
        ],
    )
    yield EventRoute(queue_url=queue_url, bus=name)
    events.remove_targets(Rule=name, EventBusName=name, Ids=["operator-queue"])
    events.delete_rule(Name=name, EventBusName=name)
    events.delete_event_bus(Name=name)
    sqs.delete_queue(QueueUrl=queue_url)


def event_store(
    namespace: str, endpoint: str, queue_url: str, *, service: str = "SecretsManager"
) -> dict[str, Any]:
    store = aws_store(namespace, endpoint, service=service)
    store["spec"]["events"] = {"sqs": {"queueUrl": queue_url}}
    return store


def put_event(
    env: DevEnv, route: EventRoute, detail_type: str, detail: dict[str, Any], **extra: Any
) -> None:
    """Put one event on the test's bus, as the AWS service (via CloudTrail) would."""
    source = extra.pop("source", "aws.secretsmanager")
    answer = client(env, "events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": route.bus,
                **extra,
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0, answer


def put_secret_value_event(env: DevEnv, route: EventRoute, name: str, answer: Any) -> None:
    """The event AWS sends after a PutSecretValue: secretId as given, the ARN in the answer."""
    put_event(
        env,
        route,
        "AWS API Call via CloudTrail",
        cloudtrail_detail(
            "PutSecretValue",
            {"secretId": name, "clientRequestToken": answer["VersionId"]},
            {"arn": answer["ARN"]},
        ),
    )


def queue_drained(env: DevEnv, route: EventRoute) -> bool:
    attributes = client(env, "sqs").get_queue_attributes(
        QueueUrl=route.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return bool(
        attributes["ApproximateNumberOfMessages"] == "0"
        and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def metric(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - the operator's /metrics
        text = resp.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def value_of(api: Any, namespace: str, secret: str, key: str) -> bytes | None:
    data = scenario.secret_data(api, namespace, secret) or {}
    return data.get(key)


def wait_for_value(
    api: Any, namespace: str, secret: str, key: str, value: str, *, timeout: float = 10
) -> float:
    """Seconds until the Secret holds the value."""
    start = time.monotonic()
    kube.eventually(
        lambda: value_of(api, namespace, secret, key) == value.encode(),
        timeout=timeout,
        interval=0.05,
        what=f"Secret {namespace}/{secret} to hold the new value",
    )
    return time.monotonic() - start


def new_value(secret_values: set[bytes], prefix: str) -> str:
    value = f"{prefix}-{uuid.uuid4().hex}"
    secret_values.add(value.encode())
    return value


# --- the queue itself -----------------------------------------------------------------------


def test_the_sqs_queue_receives_in_batches_deletes_and_translates_errors(
    env: DevEnv, route: EventRoute
) -> None:
    spec = AwsProvider(service="SecretsManager", region=REGION, endpoint=env.aws_endpoint)
    session = Session(
        identity="static-keys:testing",
        expires_at=None,
        credentials=AwsCredentials(access_key_id="testing", secret_access_key="testing"),
    )
    calls: list[tuple[str, str]] = []

    def observe(operation: str, outcome: str) -> None:
        calls.append((operation, outcome))

    backend = AwsBackend(spec)
    assert isinstance(backend, EventSourceBackend)
    queue = backend.event_queue(session, route.queue_url, observe)
    sqs = client(env, "sqs")
    for i in range(12):
        sqs.send_message(QueueUrl=route.queue_url, MessageBody=f"body-{i}")

    async def scenario_() -> tuple[list[str], list[str], str]:
        first = await queue.receive(wait_seconds=1)
        second = await queue.receive(wait_seconds=1)
        await queue.delete([*first, *second])
        started = time.monotonic()
        empty = await queue.receive(wait_seconds=1)
        assert empty == []
        assert time.monotonic() - started >= 0.9, "the long poll did not wait"
        missing_url = route.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
        missing = backend.event_queue(session, missing_url, observe)
        try:
            await missing.receive(wait_seconds=0)
        except ProviderError as exc:
            failure = str(exc)
        else:
            failure = ""
        return [m.body for m in first], [m.body for m in second], failure

    first, second, failure = asyncio.run(scenario_())
    assert 1 <= len(first) <= 10
    assert sorted(first + second) == sorted(f"body-{i}" for i in range(12))
    assert queue_drained(env, route)
    assert "no-such-queue" in failure
    assert "ReceiveMessage" in failure
    assert ("ReceiveMessage", "success") in calls
    assert ("DeleteMessageBatch", "success") in calls
    assert ("ReceiveMessage", "error") in calls


# --- Secrets Manager ------------------------------------------------------------------------


def test_a_secret_rotation_event_updates_exactly_the_syncs_that_read_it_within_seconds(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    route: EventRoute,
    secret_values: set[bytes],
) -> None:
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, event_store(namespace, aws.url, route.queue_url))
    sm = client(env, "secretsmanager")
    db, other = f"{namespace}/db", f"{namespace}/other"
    db_arn = sm.create_secret(Name=db, SecretString=new_value(secret_values, "db-v1"))["ARN"]
    other_v1 = new_value(secret_values, "other-v1")
    sm.create_secret(Name=other, SecretString=other_v1)
    scenario.apply(
        env,
        # One SecretSync reads the secret by name, one by its full ARN, one reads another.
        sync(
            namespace,
            "by-name",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": db}}]},
        ),
        sync(
            namespace,
            "by-arn",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": db_arn}}]},
        ),
        sync(
            namespace,
            "other",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": other}}]},
        ),
    )
    for name in ("by-name", "by-arn", "other"):
        scenario.wait_for_reason(api, namespace, name, "Synced")

    # Both secrets change; without an event nothing happens (the refresh is an hour away).
    v2 = new_value(secret_values, "db-v2")
    answer = sm.put_secret_value(SecretId=db, SecretString=v2)
    sm.put_secret_value(SecretId=other, SecretString=new_value(secret_values, "other-v2"))
    time.sleep(2)
    assert value_of(api, namespace, "by-name", "v") != v2.encode()

    # The event names only the first secret: exactly its two SecretSyncs follow.
    put_secret_value_event(env, route, db, answer)
    wait_for_value(api, namespace, "by-name", "v", v2, timeout=8)
    wait_for_value(api, namespace, "by-arn", "v", v2, timeout=8)
    kube.eventually(lambda: queue_drained(env, route), timeout=10, what="the queue to drain")
    time.sleep(1)
    assert value_of(api, namespace, "other", "v") == other_v1.encode()

    # The queue is read as the namespace's own role, through the store's endpoint.
    roles = aws.roles_by_access_key()
    receives = [
        c
        for c in aws.snapshot()
        if c.action == "ReceiveMessage" and route.queue_url.encode() in c.body
    ]
    assert receives, "the operator never read the queue through the store's endpoint"
    assert {roles.get(c.access_key or "") for c in receives} == {role(namespace)}
    deletes = [
        c
        for c in aws.snapshot()
        if c.action == "DeleteMessageBatch" and route.queue_url.encode() in c.body
    ]
    assert deletes, "the handled message was not deleted by the operator"

    # A finished rotation (Secrets Manager's own service event) does the same.
    v3 = new_value(secret_values, "db-v3")
    sm.put_secret_value(SecretId=db, SecretString=v3)
    detail = cloudtrail_detail("RotationSucceeded", {}, None)
    detail.update(
        eventType="AwsServiceEvent",
        requestParameters=None,
        additionalEventData={"SecretId": db_arn},
        userIdentity={"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
    )
    put_event(env, route, "AWS Service Event via CloudTrail", detail)
    wait_for_value(api, namespace, "by-arn", "v", v3, timeout=8)
    wait_for_value(api, namespace, "by-name", "v", v3, timeout=8)


# --- SSM Parameter Store --------------------------------------------------------------------


def test_a_parameter_store_change_event_updates_the_secret_within_seconds(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    route: EventRoute,
    secret_values: set[bytes],
) -> None:
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, event_store(namespace, aws.url, route.queue_url, service="ParameterStore"))
    ssm = client(env, "ssm")
    name = f"/{namespace}/app/db-password"
    ssm.put_parameter(Name=name, Value=new_value(secret_values, "p-v1"), Type="SecureString")
    scenario.apply(
        env,
        sync(
            namespace,
            "param",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": name}}]},
        ),
    )
    scenario.wait_for_reason(api, namespace, "param", "Synced")

    v2 = new_value(secret_values, "p-v2")
    ssm.put_parameter(Name=name, Value=v2, Type="SecureString", Overwrite=True)
    time.sleep(2)
    assert value_of(api, namespace, "param", "v") != v2.encode()
    put_event(
        env,
        route,
        "Parameter Store Change",
        {"operation": "Update", "name": name, "type": "SecureString", "description": ""},
        source="aws.ssm",
        Resources=[f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"],
    )
    wait_for_value(api, namespace, "param", "v", v2, timeout=8)
    kube.eventually(lambda: queue_drained(env, route), timeout=10, what="the queue to drain")


# --- what is not acted on -------------------------------------------------------------------


def test_malformed_and_foreign_account_messages_are_discarded_and_change_nothing(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    route: EventRoute,
    operator_log: Path,
    operator_metrics: str,
    secret_values: set[bytes],
) -> None:
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, event_store(namespace, aws.url, route.queue_url))
    sm = client(env, "secretsmanager")
    db = f"{namespace}/db"
    v1 = new_value(secret_values, "keep-v1")
    db_arn = sm.create_secret(Name=db, SecretString=v1)["ARN"]
    scenario.apply(
        env,
        sync(
            namespace,
            "db",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": db}}]},
        ),
    )
    scenario.wait_for_reason(api, namespace, "db", "Synced")
    log_start = operator_log.stat().st_size

    def discarded(reason: str) -> float:
        return metric(
            operator_metrics, "secretsync_events_discarded_total", source="sqs", reason=reason
        )

    before = {r: discarded(r) for r in ("malformed", "foreign-account")}
    # The remote value really changes: a message wrongly acted on would show in the Secret.
    v2 = new_value(secret_values, "keep-v2")
    sm.put_secret_value(SecretId=db, SecretString=v2)

    sqs = client(env, "sqs")
    leaked = new_value(secret_values, "in-a-malformed-body")
    malformed = sqs.send_message(QueueUrl=route.queue_url, MessageBody=f"{{oops {leaked}")
    foreign_event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": FOREIGN_ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [],
        "detail": cloudtrail_detail(
            "PutSecretValue",
            {"secretId": db},
            {"arn": db_arn.replace(ACCOUNT, FOREIGN_ACCOUNT)},
            account=FOREIGN_ACCOUNT,
        ),
    }
    foreign = sqs.send_message(QueueUrl=route.queue_url, MessageBody=json.dumps(foreign_event))
    # Through EventBridge in our account, naming another account's secret: foreign too.
    put_event(
        env,
        route,
        "AWS API Call via CloudTrail",
        cloudtrail_detail(
            "PutSecretValue", {"secretId": db_arn.replace(ACCOUNT, FOREIGN_ACCOUNT)}, None
        ),
    )

    kube.eventually(lambda: queue_drained(env, route), timeout=15, what="the queue to drain")
    kube.eventually(
        lambda: (
            discarded("malformed") >= before["malformed"] + 1
            and discarded("foreign-account") >= before["foreign-account"] + 2
        ),
        timeout=10,
        what="the discards to be counted",
    )
    log = operator_log.read_bytes()[log_start:].decode(errors="replace")
    assert f"discarded event message {malformed['MessageId']}" in log
    assert f"discarded event message {foreign['MessageId']}" in log
    assert leaked not in log
    time.sleep(1)
    assert value_of(api, namespace, "db", "v") == v1.encode()


# --- latency --------------------------------------------------------------------------------


class SecretWatch:
    """Records when each value of one Secret key first appears (a watch, not polling)."""

    def __init__(self, api: Any, namespace: str, name: str, key: str) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self._namespace, self._name, self._key = namespace, name, key
        self._seen: dict[bytes, float] = {}
        self._error: Exception | None = None
        self._stopped = threading.Event()
        self._cond = threading.Condition()
        # kubernetes.watch has no annotations.
        self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():  # a watch ends at its timeout: open another
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self._core.list_namespaced_secret,
                    self._namespace,
                    field_selector=f"metadata.name={self._name}",
                    timeout_seconds=30,
                ):
                    data = event["object"].data or {}
                    if self._key in data:
                        value = base64.b64decode(data[self._key])
                        with self._cond:
                            self._seen.setdefault(value, time.monotonic())
                            self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported by wait() unless stopping anyway
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def wait(self, value: bytes, timeout: float) -> float:
        """The monotonic time the value appeared."""
        with self._cond:
            self._cond.wait_for(
                lambda: value in self._seen or self._error is not None, timeout=timeout
            )
            if value in self._seen:
                return self._seen[value]
            if self._error is not None:
                raise RuntimeError("the watch of the Secret failed") from self._error
            raise TimeoutError(f"the Secret did not take the new value within {timeout}s")

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]


def test_rotation_latency_over_a_hundred_rotations_is_recorded(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    route: EventRoute,
    secret_values: set[bytes],
) -> None:
    """Event delivered (put on the bus, hence in the queue) -> Secret updated, one rotation
    at a time; the figures go to bench/out/rotation-latency.json. Only correctness is asserted:
    every rotation arrives, by event, in order."""
    scenario.service_account(api, namespace, "sync")
    scenario.apply(env, event_store(namespace, aws.url, route.queue_url))
    sm = client(env, "secretsmanager")
    name = f"{namespace}/rotating"
    sm.create_secret(Name=name, SecretString=new_value(secret_values, "r-0"))
    scenario.apply(
        env,
        sync(
            namespace,
            "rotating",
            {"refreshInterval": "1h", "data": [{"secretKey": "v", "remoteRef": {"key": name}}]},
        ),
    )
    scenario.wait_for_reason(api, namespace, "rotating", "Synced")
    watch = SecretWatch(api, namespace, "rotating", "v")
    samples: list[float] = []
    try:
        for i in range(1, ROTATIONS + 1):
            value = new_value(secret_values, f"r-{i}")
            answer = sm.put_secret_value(SecretId=name, SecretString=value)
            put_secret_value_event(env, route, name, answer)
            delivered = time.monotonic()  # moto has put the event in the queue
            samples.append(watch.wait(value.encode(), timeout=15) - delivered)
    finally:
        watch.stop()
    assert len(samples) == ROTATIONS
    assert value_of(api, namespace, "rotating", "v") == value.encode()

    ordered = sorted(samples)
    figures = {
        "rotations": len(samples),
        "measured": "put_events returned (event in the SQS queue) -> the Secret's watch shows "
        "the new value; SecretSync refreshInterval 1h; operator, moto and control plane local",
        "p50_seconds": round(statistics.median(ordered), 4),
        "p99_seconds": round(ordered[math.ceil(0.99 * len(ordered)) - 1], 4),  # nearest rank
        "max_seconds": round(ordered[-1], 4),
        "mean_seconds": round(statistics.fmean(ordered), 4),
        "samples_seconds": [round(s, 4) for s in samples],
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    BENCH_FILE.parent.mkdir(parents=True, exist_ok=True)
    BENCH_FILE.write_text(json.dumps(figures, indent=2) + "\n")
