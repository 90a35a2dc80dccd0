"""A provider that throttles or fails for minutes gets a few probes, not a retry storm; the
Secrets stay as they were; every SecretSync says why; all recover by themselves.

Defect 2 of the reliability issue: backoff was per SecretSync and botocore retried under
it, so one store's 10 due SecretSyncs made 140 calls in 40 s of ThrottlingException. Now
one circuit per identity and endpoint opens at the first throttled call: due SecretSyncs
wait for its probe, the probe backs off 2, 4, 8 ... s (full jitter over the upper half,
capped at 300 s, at least what a Retry-After asks), and the SDK does not retry under it.

The bound checked: after the first failing round, at most one probe per backoff step.
The steps' lower ends are 1, 2, 4, 8 ... s, so in T seconds there are at most
n(T) = the largest n with 1 + 2 + ... + 2^(n-1) <= T probes (n(40) = 5, n(300) = 8), and
each probe round is one call per batch of 20 keys plus the store's re-check (one STS
GetCallerIdentity, through the same circuit).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from faults import world
from faults.size import FULL
from harness import operator as op
from harness import scenario, vaultsetup
from harness.devenv import DevEnv
from harness.faultproxy import Call, Fault, FaultProxy, ServerError, Throttle

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

SYNCS = 10
FAULT_SECONDS = 300.0 if FULL else 40.0
REFRESH = "10s"  # due again and again while the fault lasts


def probes_within(seconds: float, *, at_least: float = 0.0) -> int:
    """The most probes the circuit allows in `seconds` (see the module docstring)."""
    spent, n, step = 0.0, 0, 1.0
    while True:
        wait = max(step, at_least)
        if spent + wait > seconds:
            return n
        spent += wait
        n += 1
        step = min(step * 2, 150.0)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    provider: str  # "aws" | "vault"
    fault: Fault
    retry_after: float = 0.0


CASES = [
    Case("AWS ThrottlingException", "aws", Throttle()),
    Case("Vault 429 with Retry-After: 5", "vault", Throttle(retry_after=5), retry_after=5.0),
]
if FULL:
    CASES += [
        Case("AWS 503 ServiceUnavailable", "aws", ServerError(status=503)),
        Case("Vault 503 (sealed)", "vault", ServerError(status=503)),
    ]


@pytest.fixture(scope="module")
def aws(faults_env: DevEnv) -> Iterator[FaultProxy]:
    proxy = FaultProxy(faults_env.aws_endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def vault(faults_env: DevEnv) -> Iterator[FaultProxy]:
    proxy = FaultProxy(faults_env.vault_addr)
    yield proxy
    proxy.stop()


def _aws_put(env: DevEnv, name: str, data: str) -> None:
    client = cast(Any, boto3).client(
        "secretsmanager",
        endpoint_url=env.aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_secret(Name=name, SecretString=data)


def _team(case: Case, env: DevEnv, api: Any, proxy: FaultProxy, values: set[bytes]) -> str:
    if case.provider == "aws":
        ns = world.aws_team(env, api, "throttle", endpoint=proxy.url)
    else:
        ns = world.vault_team(env, api, "throttle", server=proxy.url)
    docs = []
    for i in range(SYNCS):
        secret = world.value()
        values.add(secret.encode())
        if case.provider == "aws":
            _aws_put(env, f"{ns}/k{i}", f'{{"p": "{secret}"}}')
        else:
            vaultsetup.put(env, f"{ns}/k{i}", {"p": secret})
        docs.append(world.sync(ns, f"s{i}", f"{ns}/k{i}", store=case.provider, refresh=REFRESH))
    world.apply_many(env, docs)
    return ns


def _provider_calls(proxy: FaultProxy, since: float, until: float) -> list[Call]:
    """Calls made with the namespace's session (logins are unsigned or to auth/)."""
    return [
        c
        for c in proxy.select(since=since, until=until)
        if c.identity is not None and not c.vault_path.startswith("auth/")
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_failing_provider_gets_probes_with_backoff_and_everything_recovers(
    case: Case,
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    aws: FaultProxy,
    vault: FaultProxy,
    figures: Callable[..., None],
) -> None:
    proxy = aws if case.provider == "aws" else vault
    with op.running(faults_env, faults_log) as proc:
        ns = _team(case, faults_env, faults_api, proxy, faults_values)
        world.wait_all(faults_api, ns, SYNCS, timeout=60)
        before = world.versions(world.managed_secrets(faults_api, ns))
        identities = {c.identity for c in _provider_calls(proxy, 0, time.monotonic())}
        rule = proxy.inject(case.fault, where=lambda c: c.identity in identities)
        start = time.monotonic()
        time.sleep(FAULT_SECONDS)
        end = time.monotonic()
        during = _provider_calls(proxy, start, end)
        statuses = world.unsynced(faults_api, ns, reason="ProviderUnavailable")
        messages = {
            (scenario.ready(o) or {}).get("message", "") for o in world.syncs_in(faults_api, ns)
        }
        rule.clear()
        recovered = world.wait_all(faults_api, ns, SYNCS, timeout=330)
        store = scenario.store_ready(faults_api, "SecretStore", ns, case.provider)
        after = world.versions(world.managed_secrets(faults_api, ns))
        assert proc.poll() is None
    probes = probes_within(FAULT_SECONDS, at_least=case.retry_after)
    # The first failing round, then one round per probe; a round is one batch call, and
    # the store's re-check may add one call of its own per step.
    bound = 2 * (1 + probes)
    figures(
        f"provider fault for {FAULT_SECONDS:.0f} s: {case.name}",
        secretsyncs=SYNCS,
        refresh=REFRESH,
        calls_during_fault=len(during),
        calls_bound=bound,
        recovered_after_s=round(recovered, 1),
        secrets_rewritten=sum(before[k] != after.get(k) for k in before),
    )
    assert len(during) <= bound, f"{len(during)} calls in {FAULT_SECONDS:.0f} s: " + ", ".join(
        sorted({c.action or c.vault_path for c in during})
    )
    assert after == before, "a Secret was written while the provider failed"
    assert statuses == [], "a SecretSync did not report ProviderUnavailable during the fault"
    assert all((m and "will retry" in m) or "retried" in m for m in messages), messages
    assert store["status"] == "True", store
    # Recovery: the next probe, at most one (capped) backoff step after the fault ended.
    assert recovered <= min(2.0 ** (probes + 1), 300.0) + max(case.retry_after, 0) + 10
