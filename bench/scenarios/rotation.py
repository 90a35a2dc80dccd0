"""Scenario 5, rotation latency: a remote secret changes, and the time until its Secret
holds the new value. One path per way a change reaches the operator:

- `sqs`: AWS EventBridge -> SQS (put_secret_value, then events.put_events with the
  CloudTrail record AWS would emit; the store names the queue in spec.events.sqs);
- `webhook`: the signed `POST /v1/notify`;
- `force-sync`: the `secretsync.io/force-sync` annotation;
- `aws-change-check`: no event at all, the store's changeCheckInterval (ListSecrets);
- `vault-change-check`: a new KV v2 version on OpenBao, the store's changeCheckInterval
  (KV metadata reads).

Rotations of one path run one after another over ten SecretSyncs in turn, while the
operator keeps refreshing the N SecretSyncs of the other scenarios. Before a rotation
the benchmark waits a random part of the check interval (change-check paths), so the
change lands at a random point of the check period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, cast

import boto3
import kubernetes

from bench.scenarios.common import percentile
from bench.sizes import Size
from bench.watch import ClusterWatch
from bench.world import ACCOUNT, World, aws_store, sync
from harness import devenv, scenario, vaultsetup

log = logging.getLogger("bench.rotation")

AWS_NS = "rot-aws"
VAULT_NS = "rot-vault"
WEBHOOK_SECRET = "webhook-key"  # noqa: S105 - a Secret's name
QUEUE = "secretsync-rot-events"
BUS = "secretsync-rot"
EVENT_FIELDS = ("id", "detail-type", "source", "account", "time", "region", "resources", "detail")
EVENT_TEMPLATE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
    '"detail": <detail>}'
)
PER_PATH = 10  # SecretSyncs (and remote secrets) each path rotates in turn
TIMEOUT = 30.0  # one rotation that takes longer is a failure
PROBE_TIMEOUT = 25.0  # the first SQS rotation: is the consumer there at all?


@dataclasses.dataclass(frozen=True, kw_only=True)
class RotationPath:
    name: str
    label: str
    namespace: str
    store: str
    event_driven: bool


PATHS = (
    RotationPath(
        name="sqs",
        label="AWS event: EventBridge -> SQS",
        namespace=AWS_NS,
        store="aws-sqs",
        event_driven=True,
    ),
    RotationPath(
        name="webhook",
        label="event: signed webhook POST /v1/notify",
        namespace=AWS_NS,
        store="aws",
        event_driven=True,
    ),
    RotationPath(
        name="force-sync",
        label="force-sync annotation",
        namespace=AWS_NS,
        store="aws",
        event_driven=True,
    ),
    RotationPath(
        name="aws-change-check",
        label="AWS change detection (changeCheckInterval, ListSecrets)",
        namespace=AWS_NS,
        store="aws-check",
        event_driven=False,
    ),
    RotationPath(
        name="vault-change-check",
        label="Vault change detection (changeCheckInterval, KV v2 metadata)",
        namespace=VAULT_NS,
        store="vault",
        event_driven=False,
    ),
)


def _client(world: World, service: str) -> Any:
    return cast(Any, boto3).client(
        service,
        endpoint_url=world.env.aws_endpoint,
        region_name=devenv.AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclasses.dataclass(kw_only=True)
class Setup:
    """What prepare() made and the run needs."""

    webhook_key: bytes
    webhook_port: int
    queue_url: str


def operator_args(setup: Setup) -> list[str]:
    return [
        "--webhook-port",
        str(setup.webhook_port),
        "--webhook-secret",
        f"{AWS_NS}/{WEBHOOK_SECRET}",
    ]


def prepare(world: World, size: Size, *, webhook_port: int) -> Setup:
    """Namespaces, stores, the event route, the webhook key and the remote secrets; before
    the operator starts (its webhook reads the key at start)."""
    world.namespace(AWS_NS)
    key = secrets.token_hex(32).encode()
    kubernetes.client.CoreV1Api(world.api).create_namespaced_secret(
        AWS_NS,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=WEBHOOK_SECRET),
            string_data={"key": key.decode()},
        ),
    )
    sqs, events = _client(world, "sqs"), _client(world, "events")
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=BUS)  # a reused environment may have it
    events.put_rule(
        Name=BUS,
        EventBusName=BUS,
        EventPattern=json.dumps({"source": ["aws.secretsmanager"]}),
        State="ENABLED",
    )
    # moto's envelope lacks `account`; the transformer rebuilds the event as AWS delivers it.
    events.put_targets(
        Rule=BUS,
        EventBusName=BUS,
        Targets=[
            {
                "Id": "queue",
                "Arn": queue_arn,
                "InputTransformer": {
                    "InputPathsMap": {field: f"$.{field}" for field in EVENT_FIELDS},
                    "InputTemplate": EVENT_TEMPLATE,
                },
            }
        ],
    )
    check = {"changeCheckInterval": size.change_check}
    scenario.apply(
        world.env,
        aws_store(AWS_NS, world.aws.url),
        aws_store(AWS_NS, world.aws.url, name="aws-check", extra=check),
        aws_store(
            AWS_NS,
            world.aws.url,
            name="aws-sqs",
            extra={"events": {"sqs": {"queueUrl": queue_url}}},
        ),
    )
    world.create_secrets(
        [f"{AWS_NS}/{p.name}-{m}" for p in PATHS if p.namespace == AWS_NS for m in range(PER_PATH)]
    )
    world.namespace(VAULT_NS)
    vaultsetup.bind_namespace(world.env, world.api, VAULT_NS)
    store = vaultsetup.store(world.env, VAULT_NS, extra=check)
    store["spec"]["provider"]["vault"]["server"] = world.bao.url
    scenario.apply(world.env, store)
    for m in range(PER_PATH):
        value = f"kv-{m}-{secrets.token_hex(12)}"
        vaultsetup.put(world.env, f"{VAULT_NS}/kv-{m}", {"v": value})
        world.values[f"{VAULT_NS}/kv-{m}"] = value.encode()
    return Setup(webhook_key=key, webhook_port=webhook_port, queue_url=queue_url)


def _syncs() -> list[dict[str, Any]]:
    out = []
    for path in PATHS:
        for m in range(PER_PATH):
            if path.namespace == VAULT_NS:
                ref = {"key": f"{VAULT_NS}/kv-{m}", "property": "v"}
                out.append(sync(VAULT_NS, f"kv-{m}", {"v": ref}, store=path.store))
            else:
                ref = {"key": f"{AWS_NS}/{path.name}-{m}"}
                out.append(sync(AWS_NS, f"{path.name}-{m}", {"v": ref}, store=path.store))
    return out


def _sync_name(path: RotationPath, m: int) -> str:
    return f"kv-{m}" if path.namespace == VAULT_NS else f"{path.name}-{m}"


def _remote_key(path: RotationPath, m: int) -> str:
    return f"{VAULT_NS}/kv-{m}" if path.namespace == VAULT_NS else f"{AWS_NS}/{path.name}-{m}"


class Rotator:
    """Changes one remote secret and sends whatever the path needs to learn of it."""

    def __init__(self, world: World, setup: Setup) -> None:
        self._world = world
        self._setup = setup
        self._events = _client(world, "events")
        self._arns: dict[str, str] = {}

    def change(self, path: RotationPath, m: int) -> bytes:
        key = _remote_key(path, m)
        if path.namespace == VAULT_NS:
            value = f"kv-{m}-{secrets.token_hex(12)}"
            vaultsetup.put(self._world.env, key, {"v": value})
            self._world.values[key] = value.encode()
            return value.encode()
        return self._world.rotate(key)

    def trigger(self, path: RotationPath, m: int) -> Callable[[], None] | None:
        key = _remote_key(path, m)
        if path.name == "sqs":
            return lambda: self._event(key)
        if path.name == "webhook":
            return lambda: self._notify(path, key)
        if path.name == "force-sync":
            return lambda: self._world.force_sync(
                path.namespace, _sync_name(path, m), uuid.uuid4().hex
            )
        return None

    def _arn(self, key: str) -> str:
        if key not in self._arns:
            self._arns[key] = self._world.sm.describe_secret(SecretId=key)["ARN"]
        return self._arns[key]

    def _event(self, key: str) -> None:
        arn = self._arn(key)
        detail = {
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "accountId": ACCOUNT},
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "PutSecretValue",
            "awsRegion": devenv.AWS_REGION,
            "requestParameters": {"secretId": key, "clientRequestToken": str(uuid.uuid4())},
            "responseElements": {"arn": arn},
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        }
        answer = self._events.put_events(
            Entries=[
                {
                    "Source": "aws.secretsmanager",
                    "DetailType": "AWS API Call via CloudTrail",
                    "Detail": json.dumps(detail),
                    "EventBusName": BUS,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"put_events refused the event: {answer.get('Entries')}")

    def _notify(self, path: RotationPath, key: str) -> None:
        body = json.dumps(
            {
                "store": {"kind": "SecretStore", "namespace": path.namespace, "name": path.store},
                "keys": [key],
            }
        ).encode()
        stamp = str(int(time.time()))
        digest = hmac.new(self._setup.webhook_key, f"{stamp}.".encode() + body, hashlib.sha256)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self._setup.webhook_port}/v1/notify",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Secretsync-Signature": f"t={stamp},v1={digest.hexdigest()}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            if resp.status != 202:
                raise RuntimeError(f"webhook answered {resp.status}")


def _one(
    world: World,
    watch: ClusterWatch,
    rotator: Rotator,
    path: RotationPath,
    m: int,
    *,
    timeout: float,
) -> float:
    """One rotation; its latency in seconds (TimeoutError if the Secret never got it)."""
    value = rotator.change(path, m)
    trigger = rotator.trigger(path, m)
    begun = time.time()
    if trigger is not None:
        trigger()
    key = (path.namespace, _sync_name(path, m))
    want = {"v": value}

    def arrived() -> bool:
        secret = watch.secrets.get(key)
        return secret is not None and secret.data == want

    watch.wait(arrived, timeout=timeout, what=f"{path.name} rotation of {key[1]}")
    return watch.secrets[key].changed_at - begun


def run(world: World, watch: ClusterWatch, size: Size, setup: Setup) -> dict[str, Any]:
    syncs = _syncs()
    scenario.apply(world.env, *syncs)
    expected = {(doc["metadata"]["namespace"], doc["metadata"]["name"]) for doc in syncs}

    def all_synced() -> bool:
        return all(k in watch.syncs and watch.syncs[k].synced for k in expected)

    watch.wait(all_synced, timeout=120, what="the rotation SecretSyncs Ready")
    rotator = Rotator(world, setup)
    rng = random.Random(5)  # noqa: S311 - spreads rotations in time, not keys
    check_interval = _seconds(size.change_check)
    results: dict[str, Any] = {}
    for path in PATHS:
        count = size.rotations if path.event_driven else size.check_rotations
        latencies: list[float] = []
        failures = 0
        note = ""
        begun = time.time()
        for r in range(count):
            m = r % PER_PATH
            time.sleep(rng.uniform(0, 0.2 if path.event_driven else check_interval))
            limit = PROBE_TIMEOUT if r == 0 else TIMEOUT
            try:
                latencies.append(_one(world, watch, rotator, path, m, timeout=limit))
            except TimeoutError:
                failures += 1
                if r == 0:
                    note = f"no rotation reached the Secret within {limit:.0f}s: path not measured"
                    break
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                failures += 1
                note = f"the trigger failed ({type(exc).__name__}: {exc}): path not measured"
                break
        ended = time.time()
        results[path.name] = {
            "label": path.label,
            "event_driven": path.event_driven,
            "rotations": len(latencies),
            "failures": failures,
            "note": note,
            "p50_s": round(percentile(latencies, 50), 3) if latencies else None,
            "p90_s": round(percentile(latencies, 90), 3) if latencies else None,
            "p99_s": round(percentile(latencies, 99), 3) if latencies else None,
            "max_s": round(max(latencies), 3) if latencies else None,
            "mean_s": round(sum(latencies) / len(latencies), 3) if latencies else None,
            "latencies_s": [round(v, 4) for v in latencies],
            "duration_s": round(ended - begun, 1),
            "aws_calls": world.aws_actions(begun, ended, AWS_NS),
            "vault_requests": world.bao_requests(begun, ended),
        }
        log.info(
            "rotation: %s: %d rotations, p50 %s s, p99 %s s%s",
            path.name,
            len(latencies),
            results[path.name]["p50_s"],
            results[path.name]["p99_s"],
            f" ({note})" if note else "",
        )
    return {"change_check_interval": size.change_check, "paths": results}


def _seconds(duration: str) -> float:
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    if duration.endswith("s"):
        return float(duration[:-1])
    raise ValueError(f"unsupported duration {duration!r}")
