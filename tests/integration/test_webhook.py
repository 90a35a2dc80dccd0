"""The rotation webhook end to end: an operator process with --webhook-port, a SecretSync
from OpenBao with a one-hour refresh, and signed (or not) calls of POST /v1/notify.

This module runs an operator of its own (not the `operator` fixture), watching only a
namespace of its own. Should another operator watch that namespace too, it would not
react to a changed OpenBao value before the hour is up either (the store makes no change
checks), so a prompt change of the Secret can only come from the webhook. Its log goes
to the session's operator log, which the leak scan reads at the end.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import kube, scenario, vaultsetup
from harness import operator as op
from harness.devenv import DevEnv
from harness.processes import free_port
from secretsync.events import webhook

pytestmark = [pytest.mark.integration]

KEY_SECRET = (op.STATE_NAMESPACE, "webhook")
MARK = "MARK-webhook-body-5b1e"  # put in request bodies; must never be logged or echoed


@dataclasses.dataclass
class Hook:
    """The operator under test and what was sent to it."""

    url: str
    metrics_url: str
    namespace: str
    log: Path
    log_start: int  # where this operator's lines begin in the shared log
    key: bytes
    sent_signatures: list[str] = dataclasses.field(default_factory=list)

    def call(
        self,
        body: bytes,
        *,
        key: bytes | None = None,
        at: float | None = None,
        header: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST the body signed with the key (default: the right one) at the time (default:
        now), or with the given header; the status and the decoded JSON answer."""
        if header is None:
            header = webhook.sign(key or self.key, body, timestamp=int(at or time.time()))
        self.sent_signatures += [p[3:] for p in header.split(",") if p.startswith("v1=")]
        request = urllib.request.Request(  # noqa: S310 - the local operator
            self.url,
            data=body,
            method="POST",
            headers={webhook.HEADER: header, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def own_log(self) -> str:
        """What this module's operator logged."""
        return self.log.read_bytes()[self.log_start :].decode(errors="replace")

    def discarded(self) -> dict[str, float]:
        """secretsync_events_discarded_total{source="webhook"} by reason."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:  # noqa: S310
            text = resp.read().decode()
        return {
            sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "secretsync_events_discarded"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("source") == "webhook"
        }


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A request the webhook must refuse, and how."""

    what: str
    body: bytes
    status: int
    reason: str  # of secretsync_events_discarded_total
    key: bytes | None = None
    at: float | None = None
    header: str | None = None


def notification(store: str, namespace: str, *keys: str) -> bytes:
    """A body for a SecretStore; MARK rides along in a field the webhook ignores, so it
    reaches no one unless the body itself is echoed or logged."""
    doc = {"store": {"kind": "SecretStore", "namespace": namespace, "name": store}}
    return json.dumps({**doc, "keys": list(keys), "note": MARK}).encode()


def write_key(api: Any, key: bytes) -> None:
    """Create or replace the Secret holding the webhook key."""
    core = kubernetes.client.CoreV1Api(api)
    ns, name = KEY_SECRET
    body = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name=name),
        data={"key": base64.b64encode(key).decode()},
    )
    try:
        core.create_namespaced_secret(ns, body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, ns, body)


@pytest.fixture(scope="module")
def hook(
    env: DevEnv, api: Any, crds: None, operator_log: Path, secret_values: set[bytes]
) -> Iterator[Hook]:
    """An operator with the webhook on, watching only a fresh namespace that has an
    OpenBao SecretStore `vault` (no change checks: only the webhook may trigger)."""
    core = kubernetes.client.CoreV1Api(api)
    namespace = f"hook-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=namespace))
    )
    op.ensure_state_namespace(env)
    key = secrets.token_hex(32).encode()
    secret_values.add(key)
    write_key(api, key)
    vaultsetup.bind_namespace(env, api, namespace)
    scenario.apply(env, vaultsetup.store(env, namespace, extra={"changeCheckInterval": "0"}))
    port, metrics_port = free_port(), free_port()
    log_start = operator_log.stat().st_size if operator_log.exists() else 0
    args = ["--namespace", namespace, "--webhook-port", str(port)]
    args += ["--webhook-secret", "/".join(KEY_SECRET)]
    try:
        with op.running(env, operator_log, *args, metrics_port=metrics_port):
            scenario.store_ready(api, "SecretStore", namespace, "vault")
            yield Hook(
                url=f"http://127.0.0.1:{port}{webhook.PATH}",
                metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                namespace=namespace,
                log=operator_log,
                log_start=log_start,
                key=key,
            )
    finally:
        core.delete_namespace(namespace)
        core.delete_namespaced_secret(KEY_SECRET[1], KEY_SECRET[0])


def synced_value(
    env: DevEnv, api: Any, hook: Hook, name: str, secret_values: set[bytes]
) -> tuple[str, str]:
    """A SecretSync `name` (refresh every hour) of remote key <ns>/<name>, synced with a
    first value; then OpenBao gets a second value, which the Secret does not have yet.
    Returns the remote key and the second value."""
    remote = f"{hook.namespace}/{name}"
    first, second = (f"{name}-{i}-{uuid.uuid4().hex}" for i in (1, 2))
    secret_values.update({first.encode(), second.encode()})
    vaultsetup.put(env, remote, {"v": first})
    spec = {
        "refreshInterval": "1h",
        "data": [{"secretKey": "v", "remoteRef": {"key": remote, "property": "v"}}],
    }
    scenario.apply(env, vaultsetup.sync(hook.namespace, name, spec))
    scenario.wait_for_reason(api, hook.namespace, name, "Synced")
    assert scenario.secret_data(api, hook.namespace, name) == {"v": first.encode()}
    vaultsetup.put(env, remote, {"v": second})
    return remote, second


def stays(api: Any, hook: Hook, name: str, expected: dict[str, bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert scenario.secret_data(api, hook.namespace, name) == expected
        time.sleep(0.5)


def test_a_signed_notification_syncs_the_changed_key_at_once(
    env: DevEnv, api: Any, hook: Hook, secret_values: set[bytes]
) -> None:
    remote, second = synced_value(env, api, hook, "rotated", secret_values)
    before = scenario.secret_data(api, hook.namespace, "rotated")
    stays(api, hook, "rotated", before or {}, 3)  # nothing else picks the change up
    assert hook.call(notification("vault", hook.namespace, remote)) == (202, {"matched": 1})
    kube.eventually(
        lambda: scenario.secret_data(api, hook.namespace, "rotated") == {"v": second.encode()},
        timeout=10,
        what="the Secret to hold the rotated value",
    )


def test_refused_requests_are_answered_clearly_and_change_nothing(
    env: DevEnv, api: Any, hook: Hook, secret_values: set[bytes]
) -> None:
    remote, second = synced_value(env, api, hook, "guarded", secret_values)
    before = scenario.secret_data(api, hook.namespace, "guarded")
    discarded = hook.discarded()
    good = notification("vault", hook.namespace, remote)
    oversized = json.loads(good)
    oversized["padding"] = MARK * 3000  # ~66 KB: over the 64 KiB limit
    store = json.loads(good)["store"]
    now = time.time()
    cases = [
        Refusal("wrong signature", good, 401, "bad-signature", key=secrets.token_bytes(32)),
        Refusal("no signature", good, 401, "bad-signature", header=f"t={int(now)}"),
        Refusal("stale timestamp", good, 401, "stale", at=now - 301),
        Refusal("future timestamp", good, 401, "stale", at=now + 400),
        Refusal("oversized body", json.dumps(oversized).encode(), 413, "too-large"),
        Refusal(
            "unknown store", notification("absent", hook.namespace, remote), 404, "unknown-store"
        ),
        Refusal(
            "unwatched namespace", notification("vault", "default", remote), 404, "unknown-store"
        ),
        Refusal("malformed JSON", b'{"store": ' + MARK.encode(), 400, "malformed"),
        Refusal("no keys", json.dumps({"store": store, "note": MARK}).encode(), 400, "malformed"),
    ]
    for case in cases:
        code, answer = hook.call(case.body, key=case.key, at=case.at, header=case.header)
        assert code == case.status, f"{case.what}: {code} {answer}"
        assert set(answer) == {"error"}, case.what
        assert MARK not in answer["error"], case.what
    stays(api, hook, "guarded", before or {}, 5)
    after = hook.discarded()
    for case in cases:
        assert after.get(case.reason, 0) > discarded.get(case.reason, 0), case.what
    # The same change, correctly signed, does go through: the refusals were what held it.
    assert hook.call(good) == (202, {"matched": 1})
    kube.eventually(
        lambda: scenario.secret_data(api, hook.namespace, "guarded") == {"v": second.encode()},
        timeout=10,
        what="the Secret to hold the rotated value",
    )


def test_a_rotated_key_is_used_at_once_and_the_old_one_refused(
    api: Any, hook: Hook, secret_values: set[bytes]
) -> None:
    body = notification("vault", hook.namespace, f"{hook.namespace}/nobody-reads-this")
    assert hook.call(body) == (202, {"matched": 0})  # the current key is cached
    old, new = hook.key, secrets.token_hex(32).encode()
    secret_values.add(new)
    write_key(api, new)
    time.sleep(1.2)  # a mismatch re-reads the key at most once a second
    hook.key = new
    assert hook.call(body) == (202, {"matched": 0})
    # During a rotation a sender may sign with both; one valid signature is enough.
    t = str(int(time.time()))
    both = f"t={t},v1={webhook.signature(old, body, timestamp=t)}"
    both += f",v1={webhook.signature(new, body, timestamp=t)}"
    assert hook.call(body, header=both) == (202, {"matched": 0})
    time.sleep(1.2)
    assert hook.call(body, key=old)[0] == 401


def test_the_operator_log_holds_no_key_signature_or_body(
    api: Any, hook: Hook, secret_values: set[bytes]
) -> None:
    body = notification("vault", hook.namespace, f"{hook.namespace}/nobody-reads-this")
    assert hook.call(body)[0] == 202
    assert hook.call(b"{" + MARK.encode())[0] == 400
    assert hook.call(body, key=b"wrong-key-wrong-key")[0] == 401
    own = hook.own_log()
    assert "webhook: listening on 0.0.0.0:" in own, "wrong log file?"
    assert f"webhook: SecretStore {hook.namespace}/vault reports 1 changed remote key(s)" in own
    assert "with 401 (bad-signature)" in own
    log = hook.log.read_bytes()  # every operator's, this one's included
    assert MARK.encode() not in log
    for signature in hook.sent_signatures:
        assert signature.encode() not in log
    for value in secret_values:  # the webhook keys and every value the session used
        assert value not in log
