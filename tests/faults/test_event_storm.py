"""An event storm: 1,000 rotation events for 100 keys within a second or two reach the
cluster as one write per Secret, with the newest value; and an event that never comes
is made up for by the change check."""

from __future__ import annotations

import collections
import concurrent.futures
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from faults import world
from harness import operator as op
from harness import scenario
from harness.audit import WRITE_VERBS, AuditLog
from harness.awsevents import cloudtrail_detail, envelope
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

KEYS = 100
EVENTS = 1000
CHANGE_CHECK = 5  # seconds
SENDERS = 10  # threads sending the events, each SendMessageBatch carrying 10


def _client(env: DevEnv, service: str) -> Any:
    return cast(Any, boto3).client(
        service,
        endpoint_url=env.aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_a_storm_of_events_writes_each_secret_once_and_a_lost_one_is_caught(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    figures: Callable[..., None],
) -> None:
    sm, sqs = _client(faults_env, "secretsmanager"), _client(faults_env, "sqs")
    senders = [_client(faults_env, "sqs") for _ in range(SENDERS)]
    queue = sqs.create_queue(QueueName=f"storm-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    assert faults_env.audit_log is not None
    audit = AuditLog(faults_env.audit_log)
    with op.running(faults_env, faults_log) as proc:
        ns = world.aws_team(
            faults_env,
            faults_api,
            "storm",
            endpoint=faults_env.aws_endpoint,
            events={"sqs": {"queueUrl": queue}},
            changeCheckInterval=f"{CHANGE_CHECK}s",
        )
        arns = {}
        for i in range(KEYS):
            secret = world.value()
            faults_values.add(secret.encode())
            arns[i] = sm.create_secret(Name=f"{ns}/k{i}", SecretString=f'{{"p": "{secret}"}}')[
                "ARN"
            ]
        world.apply_many(
            faults_env,
            [world.sync(ns, f"s{i}", f"{ns}/k{i}", store="aws") for i in range(KEYS)],
        )
        world.wait_all(faults_api, ns, KEYS, timeout=120)
        newest = {}
        for i in range(KEYS):  # the rotation happened; its events arrive all at once
            newest[i] = world.value()
            faults_values.add(newest[i].encode())
            sm.put_secret_value(SecretId=f"{ns}/k{i}", SecretString=f'{{"p": "{newest[i]}"}}')
        start = time.time()
        bodies = [
            envelope(
                "AWS API Call via CloudTrail",
                cloudtrail_detail(
                    "PutSecretValue", {"secretId": f"{ns}/k{n % KEYS}"}, {"arn": arns[n % KEYS]}
                ),
            )
            for n in range(EVENTS)
        ]
        batches = [bodies[first : first + 10] for first in range(0, EVENTS, 10)]

        def send(worker: int) -> None:
            client = senders[worker]  # boto3 clients are not shared between threads
            for batch in batches[worker::SENDERS]:
                entries = [{"Id": str(j), "MessageBody": body} for j, body in enumerate(batch)]
                client.send_message_batch(QueueUrl=queue, Entries=entries)

        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(send, range(SENDERS)))
        sent = time.time() - start

        def newest_everywhere() -> bool:
            return all(
                scenario.secret_data(faults_api, ns, f"s{i}") == {"value": newest[i].encode()}
                for i in range(KEYS)
            )

        world.wait_for(newest_everywhere, 120)
        converged = time.time() - start
        world.wait_for(
            lambda: (
                sqs.get_queue_attributes(
                    QueueUrl=queue,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                == {
                    "ApproximateNumberOfMessages": "0",
                    "ApproximateNumberOfMessagesNotVisible": "0",
                }
            ),
            120,
        )
        time.sleep(3)
        writes = collections.Counter(
            r.name
            for r in audit.requests(start, time.time(), namespace_prefix=ns)
            if r.resource == "secrets" and r.verb in WRITE_VERBS
        )
        # An update that no event announces: the change check finds it.
        lost = world.value()
        faults_values.add(lost.encode())
        sm.put_secret_value(SecretId=f"{ns}/k0", SecretString=f'{{"p": "{lost}"}}')
        unannounced = time.monotonic()
        world.wait_for(
            lambda: scenario.secret_data(faults_api, ns, "s0") == {"value": lost.encode()},
            CHANGE_CHECK * 4,
        )
        caught = time.monotonic() - unannounced
        assert proc.poll() is None
    figures(
        "event storm: 1,000 rotation events for 100 keys",
        events=EVENTS,
        keys=KEYS,
        sent_in_s=round(sent, 1),
        all_newest_after_s=round(converged, 1),
        secret_writes=sum(writes.values()),
        unannounced_change_caught_after_s=round(caught, 1),
        change_check_interval_s=CHANGE_CHECK,
    )
    assert sorted(writes) == sorted(f"s{i}" for i in range(KEYS))
    assert set(writes.values()) == {1}, "a Secret was written more than once"
