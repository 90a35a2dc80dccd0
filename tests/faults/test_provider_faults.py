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

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from faults import world
from faults.size import FULL
from harness import delivery, scenario, vaultsetup
from harness import operator as op
from harness.devenv import DevEnv, bao_request
from harness.faultproxy import AwsError, Call, Delay, Fault, FaultProxy, ServerError, Throttle

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
        try:
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
        finally:
            # Gone before the next case of the same provider, whose operator would
            # otherwise sync this namespace too, and its calls would count as that case's.
            delivery.delete_namespace(faults_env, ns)
    probes = probes_within(FAULT_SECONDS, at_least=case.retry_after)
    # The first failing round, then one round per probe; a round is one batch call, and
    # the store's re-check may add one call of its own per step.
    bound = 2 * (1 + probes)
    figures(
        f"provider fault: {case.name}",
        fault_s=FAULT_SECONDS,
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


def _subject(token: str | None) -> str:
    """The `sub` claim of a ServiceAccount token (no verification: only who it names)."""
    if not token or token.count(".") != 2:
        return ""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("sub", ""))


def test_expired_credentials_cost_one_new_login_per_identity(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    aws: FaultProxy,
    vault: FaultProxy,
    figures: Callable[..., None],
) -> None:
    aws_case, vault_case = Case("aws", "aws", Throttle()), Case("vault", "vault", Throttle())
    with op.running(faults_env, faults_log) as proc:
        aws_ns = _team(aws_case, faults_env, faults_api, aws, faults_values)
        vault_ns = _team(vault_case, faults_env, faults_api, vault, faults_values)
        for ns in (aws_ns, vault_ns):
            world.wait_all(faults_api, ns, SYNCS, timeout=60)
        start = time.monotonic()
        # AWS: the role's temporary credentials expire (every SecretSync's next call fails).
        keys = {c.identity for c in _provider_calls(aws, 0, start) if aws_ns in c.body.decode()}
        aws.inject(AwsError(code="ExpiredTokenException"), where=lambda c: c.identity in keys)
        # Vault: every token of the kubernetes auth method is revoked.
        bao_request(
            faults_env.vault_addr,
            faults_env.vault_token,
            "POST",
            "sys/leases/revoke-prefix/auth/kubernetes/login",
        )
        time.sleep(12)  # two refresh intervals
        aws.clear()
        for ns in (aws_ns, vault_ns):
            world.wait_all(faults_api, ns, SYNCS, timeout=60)
        end = time.monotonic()
        assert proc.poll() is None
    sts_logins = [
        c
        for c in aws.select(since=start, until=end, action="AssumeRoleWithWebIdentity")
        if _subject(c.web_identity_token) == f"system:serviceaccount:{aws_ns}:sync"
    ]
    vault_logins = [
        c
        for c in vault.select(since=start, until=end)
        if c.vault_path == "auth/kubernetes/login" and json.loads(c.body).get("role") == vault_ns
    ]
    figures(
        "expired or revoked credentials",
        secretsyncs_per_identity=SYNCS,
        aws_logins_after_expiry=len(sts_logins),
        vault_logins_after_revocation=len(vault_logins),
    )
    assert len(sts_logins) == 1
    assert len(vault_logins) == 1


def test_a_slow_provider_does_not_slow_down_other_stores(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    vault: FaultProxy,
    figures: Callable[..., None],
) -> None:
    case = Case("vault", "vault", Throttle())
    with op.running(faults_env, faults_log) as proc:
        slow_ns = _team(case, faults_env, faults_api, vault, faults_values)
        fast_ns = _team(case, faults_env, faults_api, vault, faults_values)
        for ns in (slow_ns, fast_ns):
            world.wait_all(faults_api, ns, SYNCS, timeout=60)
        slow = {
            c.identity for c in vault.select() if c.vault_path.startswith(f"secret/data/{slow_ns}/")
        }
        rule = vault.inject(Delay(30), where=lambda c: c.identity in slow)
        time.sleep(12)  # the slow store's SecretSyncs are due and waiting on their calls
        secret = world.value()
        faults_values.add(secret.encode())
        vaultsetup.put(faults_env, f"{fast_ns}/new", {"p": secret})
        begun = time.monotonic()
        scenario.apply(faults_env, world.sync(fast_ns, "new", f"{fast_ns}/new"))
        scenario.wait_for_reason(faults_api, fast_ns, "new", "Synced", timeout=60)
        latency = time.monotonic() - begun
        held = rule.hits
        rule.clear()
        assert proc.poll() is None
    figures(
        "a slow provider identity (30 s per call) beside a healthy one",
        slow_calls_held=held,
        healthy_new_secretsync_synced_s=round(latency, 2),
    )
    assert held >= 8
    assert latency < 5.0


def test_a_store_whose_backend_was_down_at_start_becomes_ready_by_itself(
    faults_env: DevEnv, faults_api: Any, faults_log: Path, figures: Callable[..., None]
) -> None:
    down = FaultProxy(faults_env.aws_endpoint)
    down.stop()  # connections refused
    try:
        with op.running(faults_env, faults_log):
            ns = world.aws_team(faults_env, faults_api, "late", endpoint=down.url)
            cond = scenario.store_ready(faults_api, "SecretStore", ns, "aws")
            world.wait_for(
                lambda: (
                    scenario.store_ready(faults_api, "SecretStore", ns, "aws")["status"] == "False"
                ),
                30,
            )
            down.start()
            back = time.monotonic()
            world.wait_for(
                lambda: (
                    scenario.store_ready(faults_api, "SecretStore", ns, "aws")["status"] == "True"
                ),
                120,
            )
            took = time.monotonic() - back
    finally:
        down.stop()
    figures("a store's backend comes up after the store", ready_after_backend_up_s=round(took, 1))
    assert cond is not None


def test_refresh_budget_limits_every_provider_call(
    faults_env: DevEnv,
    faults_api: Any,
    faults_log: Path,
    faults_values: set[bytes],
    aws: FaultProxy,
    figures: Callable[..., None],
) -> None:
    count = 8
    with op.running(faults_env, faults_log):
        ns = world.aws_team(
            faults_env,
            faults_api,
            "budget",
            endpoint=aws.url,
            refreshBudget={"callsPerSecond": 1, "burst": 1},
        )
        docs = []
        for i in range(count):
            secret = world.value()
            faults_values.add(secret.encode())
            _aws_put(faults_env, f"{ns}/k{i}", f'{{"p": "{secret}"}}')
            # A pinned stage is one GetSecretValue per key: one call each, not one batch.
            doc = world.sync(ns, f"s{i}", f"{ns}/k{i}", store="aws")
            doc["spec"]["data"][0]["remoteRef"]["version"] = "AWSCURRENT"
            docs.append(doc)
        start = time.monotonic()
        world.apply_many(faults_env, docs)
        world.wait_all(faults_api, ns, count, timeout=120)
    reads = [
        c.at for c in aws.select(since=start, action="GetSecretValue") if ns in c.body.decode()
    ]
    busiest = max(sum(1 for t in reads if s <= t < s + 1.0) for s in reads)
    spread = max(reads) - min(reads)
    figures(
        "refreshBudget 1 call/s, burst 1, 8 single-key reads",
        calls=len(reads),
        spread_s=round(spread, 1),
        busiest_second=busiest,
    )
    assert len(reads) == count
    assert busiest <= 2  # the burst, and one more that the second refills
    assert spread >= count - 2
