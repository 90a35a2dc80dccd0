"""What every scenario shares: the environment, the counting proxies, the audit log, the
remote secrets and the manifests of namespaces, stores and SecretSyncs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import boto3
import kubernetes
import yaml

from bench.monitor import Monitor
from bench.watch import ClusterWatch, Key
from harness import devenv, kube, scenario
from harness import operator as op
from harness.audit import BENCH_AGENT, AuditLog
from harness.awsproxy import AwsRecordingProxy, Call
from harness.processes import Processes

log = logging.getLogger("bench")

ACCOUNT = "123456789012"
SA = "sync"
SECRETS_MANAGER_ACTIONS = frozenset(
    {"BatchGetSecretValue", "GetSecretValue", "DescribeSecret", "ListSecrets"}
)
APPLY_BATCH = 1000  # SecretSyncs per `kubectl apply`


class CountingProxy(AwsRecordingProxy):
    """The harness's recording proxy, silent when a client hangs up before its answer (the
    operator's SQS long poll when the operator stops), which http.server would print."""

    def start(self) -> None:
        super().start()
        if self._server is not None:
            self._server.handle_error = _hung_up  # type: ignore[method-assign]


def _hung_up(request: Any, client_address: Any) -> None:
    return None


def role(namespace: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{namespace}-reader"


@dataclasses.dataclass(kw_only=True)
class World:
    """The running environment as the scenarios use it."""

    env: devenv.DevEnv
    api: Any  # a kubernetes ApiClient whose requests say `secretsync-bench`
    aws: AwsRecordingProxy  # what the operator sends to moto
    bao: AwsRecordingProxy  # what the operator sends to OpenBao
    audit: AuditLog | None
    out: Path  # logs, profiles
    origin: float  # time.time() at the start of the run
    sm: Any  # Secrets Manager client of the benchmark itself (straight to moto, not counted)
    operator_source: Path | None = None  # a scratch copy of the package to measure instead
    operator_env: dict[str, str] = dataclasses.field(default_factory=dict)  # --operator-env
    _roles: dict[str, str] = dataclasses.field(default_factory=dict)  # access key -> role
    values: dict[str, bytes] = dataclasses.field(default_factory=dict)  # remote key -> value

    @property
    def mono_offset(self) -> float:
        """time.time() - time.monotonic(): the proxies stamp calls with the latter."""
        return time.time() - time.monotonic()

    # --- counting -------------------------------------------------------------------

    def calls(self, proxy: AwsRecordingProxy, start: float, end: float) -> list[Call]:
        offset = self.mono_offset
        return [c for c in proxy.snapshot() if start <= c.at + offset < end]

    def aws_actions(self, start: float, end: float, prefix: str = "") -> dict[str, int]:
        """Calls that reached moto from the operator, by action; with a prefix, only those
        made as the role of a namespace starting with it (each namespace reads as its own
        role, so the calls of other scenarios' stores are left out)."""
        calls = self.calls(self.aws, start, end)
        if prefix:
            calls = [c for c in calls if self._namespace_of(c).startswith(prefix)]
        found = Counter(c.action for c in calls)
        return dict(sorted(found.items()))

    def batch_ids(self, start: float, end: float, prefix: str = "") -> Counter[str]:
        """How often each secret id was asked for in BatchGetSecretValue calls."""
        asked: Counter[str] = Counter()
        for call in self.calls(self.aws, start, end):
            if call.action != "BatchGetSecretValue":
                continue
            if prefix and not self._namespace_of(call).startswith(prefix):
                continue
            asked.update(json.loads(call.body or b"{}").get("SecretIdList") or [])
        return asked

    def _namespace_of(self, call: Call) -> str:
        """The namespace whose role made (or, for a login, asked for) the call."""
        if call.action == "AssumeRoleWithWebIdentity":
            arn = urllib.parse.parse_qs(call.body.decode(errors="replace")).get("RoleArn", [""])[0]
        else:
            key = call.access_key or ""
            if key not in self._roles:
                self._roles.update(self.aws.roles_by_access_key())
            arn = self._roles.get(key, "")
        name = arn.rsplit("/", 1)[-1]
        return name.removesuffix("-reader") if name.endswith("-reader") else ""

    def bao_requests(self, start: float, end: float) -> dict[str, int]:
        """Requests that reached OpenBao from the operator, as "<METHOD> <kind>", where the
        kind is the path's first segments (secret/data, secret/metadata, auth/...)."""
        found = Counter(
            f"{c.method} {'/'.join(c.path.split('?')[0].split('/')[2:4])}"
            for c in self.calls(self.bao, start, end)
        )
        return dict(sorted(found.items()))

    def kube_requests(self, start: float, end: float, prefix: str = "") -> dict[str, int] | None:
        if self.audit is None:
            return None
        return self.audit.counts(start, end, namespace_prefix=prefix)

    # --- the cluster ------------------------------------------------------------------

    def kubectl_apply(self, docs: Sequence[dict[str, Any]]) -> None:
        """Server-side apply (one request per object), in batches, two at a time."""
        batches = [docs[i : i + APPLY_BATCH] for i in range(0, len(docs), APPLY_BATCH)]

        def one(batch: Sequence[dict[str, Any]]) -> None:
            self.env.kubectl(
                "apply",
                "--server-side",
                "--field-manager=secretsync-bench",
                "-f",
                "-",
                input_text=yaml.safe_dump_all(batch),
            )

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(one, batches))

    def namespace(self, name: str) -> None:
        core = kubernetes.client.CoreV1Api(self.api)
        try:
            core.create_namespace(
                kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
        kube.eventually(
            lambda: _has_default_sa(core, name), timeout=60, what=f"namespace {name} ready"
        )
        scenario.service_account(self.api, name, SA)

    def delete_namespaces(self, names: Sequence[str], *, timeout: float = 1200) -> float:
        """Delete namespaces and wait until they are gone; returns the seconds it took."""
        core = kubernetes.client.CoreV1Api(self.api)
        begun = time.time()
        for name in names:
            with contextlib.suppress(kubernetes.client.ApiException):
                core.delete_namespace(name)

        def gone() -> bool:
            existing = {n.metadata.name for n in core.list_namespace().items if n.metadata}
            return not existing & set(names)

        kube.eventually(gone, timeout=timeout, what="the namespaces deleted", interval=2)
        return time.time() - begun

    def leftovers(self, prefixes: Sequence[str]) -> list[str]:
        """Namespaces of an earlier run (on a reused environment)."""
        core = kubernetes.client.CoreV1Api(self.api)
        names = [n.metadata.name for n in core.list_namespace().items if n.metadata]
        return [n for n in names if n and n.startswith(tuple(prefixes))]

    def wait_stores(self, stores: Sequence[tuple[str, str]]) -> None:
        for namespace, name in stores:
            cond = scenario.store_ready(self.api, "SecretStore", namespace, name, timeout=120)
            if cond.get("status") != "True":
                raise RuntimeError(f"store {namespace}/{name} is not Ready: {cond}")

    def force_sync(self, namespace: str, name: str, value: str) -> None:
        kubernetes.client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            scenario.GROUP,
            scenario.VERSION,
            namespace,
            "secretsyncs",
            name,
            {"metadata": {"annotations": {"secretsync.io/force-sync": value}}},
        )

    # --- remote secrets -----------------------------------------------------------------

    def create_secrets(self, keys: Sequence[str]) -> None:
        """Create remote secrets with random values (straight to moto, not counted)."""

        def one(key: str) -> None:
            value = _value(key)
            try:
                self.sm.create_secret(Name=key, SecretString=value.decode())
            except self.sm.exceptions.ResourceExistsException:
                self.sm.put_secret_value(SecretId=key, SecretString=value.decode())
            self.values[key] = value

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, keys))

    def rotate(self, key: str) -> bytes:
        """A new current version of a remote secret; returns its value."""
        value = _value(key)
        self.sm.put_secret_value(SecretId=key, SecretString=value.decode())
        self.values[key] = value
        return value

    # --- the operator -------------------------------------------------------------------

    @contextlib.contextmanager
    def operator(self, name: str, *args: str, replicas: int = 1) -> Iterator[tuple[int, Monitor]]:
        """`secretsync run --all-namespaces --log-level info` as a process (or several
        replicas, sampled as "operator", "operator-2", ...), with a monitor sampling them and
        the environment's programs."""
        extra = {"PYTHONPATH": str(self.operator_source)} if self.operator_source else {}
        extra.update(self.operator_env)
        with contextlib.ExitStack() as stack:
            pids = {}
            for i in range(1, replicas + 1):
                suffix = "" if i == 1 else f"-{i}"
                logfile = self.out / f"operator-{name}{suffix}.log"
                proc = stack.enter_context(
                    op.running(self.env, logfile, "--log-level", "info", *args, extra_env=extra)
                )
                pids[f"operator{suffix}"] = proc.pid
            monitor = Monitor({**pids, **self.devenv_pids(), "bench": os.getpid()})
            try:
                yield pids["operator"], monitor
            finally:
                monitor.stop()

    def devenv_pids(self) -> dict[str, int]:
        procs = Processes.load(self.env.run_dir)
        return {s.name: s.pid for s in procs.started if s.alive()}

    def watch(self, prefix: str) -> ClusterWatch:
        return ClusterWatch(self.api, namespace_prefix=prefix)


def _has_default_sa(core: Any, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except kubernetes.client.ApiException:
        return False
    return True


def _value(key: str) -> bytes:
    return f"{key}:{secrets.token_hex(12)}".encode()


def connect(env: devenv.DevEnv, out: Path, origin: float) -> World:
    api = env.api_client()
    api.user_agent = BENCH_AGENT
    sm = cast(Any, boto3).client(
        "secretsmanager",
        endpoint_url=env.aws_endpoint,
        region_name=devenv.AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return World(
        env=env,
        api=api,
        aws=CountingProxy(env.aws_endpoint),
        bao=CountingProxy(env.vault_addr),
        audit=AuditLog(env.audit_log) if env.audit_log else None,
        out=out,
        origin=origin,
        sm=sm,
    )


# --- manifests ----------------------------------------------------------------------------


def aws_store(
    namespace: str, endpoint: str, *, name: str = "aws", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": devenv.AWS_REGION,
                    "endpoint": endpoint,
                    "role": role(namespace),
                    "auth": {"serviceAccount": {"name": SA}},
                }
            },
            **(extra or {}),
        },
    }


def sync(
    namespace: str,
    name: str,
    refs: dict[str, dict[str, str]],
    *,
    store: str = "aws",
    refresh: str = "1h",
) -> dict[str, Any]:
    """A SecretSync writing Secret `name` with one key per entry of refs."""
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storeRef": {"name": store},
            "refreshInterval": refresh,
            "data": [{"secretKey": k, "remoteRef": ref} for k, ref in refs.items()],
        },
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layout:
    """N SecretSyncs over U remote secrets in some namespaces, each namespace with its own
    store and identity; every SecretSync reads two different keys of its namespace, and
    every key is read by the same number of SecretSyncs (N*2/U)."""

    prefix: str
    namespaces: int
    syncs: int
    unique: int

    def namespace_names(self) -> list[str]:
        return [f"{self.prefix}-{k}" for k in range(self.namespaces)]

    def keys(self, namespace: str) -> list[str]:
        per = self.unique // self.namespaces
        return [f"{namespace}/s-{j:03d}" for j in range(per)]

    def all_keys(self) -> list[str]:
        return [key for ns in self.namespace_names() for key in self.keys(ns)]

    def reads(self) -> dict[Key, tuple[str, str]]:
        """(namespace, SecretSync name) -> the two remote keys it reads."""
        per_ns = self.syncs // self.namespaces
        out: dict[Key, tuple[str, str]] = {}
        for ns in self.namespace_names():
            keys = self.keys(ns)
            u = len(keys)
            for i in range(per_ns):
                first = i % u
                second = (first + 1 + (i // u) % (u - 1)) % u
                out[(ns, f"sync-{i:05d}")] = (keys[first], keys[second])
        return out

    def manifests(self, refresh: str) -> list[dict[str, Any]]:
        return [
            sync(ns, name, {"a": {"key": a}, "b": {"key": b}}, refresh=refresh)
            for (ns, name), (a, b) in self.reads().items()
        ]

    def expected(self, values: dict[str, bytes]) -> dict[Key, dict[str, bytes]]:
        return {key: {"a": values[a], "b": values[b]} for key, (a, b) in self.reads().items()}

    def prepare(self, world: World) -> None:
        """Namespaces with their ServiceAccount and store, and the remote secrets."""
        for ns in self.namespace_names():
            world.namespace(ns)
        scenario.apply(world.env, *(aws_store(ns, world.aws.url) for ns in self.namespace_names()))
        world.create_secrets(self.all_keys())


class Convergence:
    """When each SecretSync was first Ready (Synced, at its generation) with its Secret
    holding exactly the expected data."""

    def __init__(self, watch: ClusterWatch, expected: dict[Key, dict[str, bytes]]) -> None:
        self._watch = watch
        self.expected = expected
        self.done: dict[Key, float] = {}
        watch.listen(self._on_change)
        with watch.lock():
            for key in expected:
                self._check(key, time.time())

    def _on_change(self, kind: str, key: Key) -> None:
        if key in self.expected and key not in self.done:
            self._check(key, time.time())

    def _check(self, key: Key, now: float) -> None:
        state = self._watch.syncs.get(key)
        secret = self._watch.secrets.get(key)
        if (
            state is not None
            and state.synced
            and secret is not None
            and secret.data == self.expected[key]
        ):
            self.done[key] = now

    def complete(self) -> bool:
        return len(self.done) == len(self.expected)

    def wait(self, timeout: float) -> None:
        self._watch.wait(self.complete, timeout=timeout, what="every SecretSync Ready and right")

    def close(self) -> None:
        self._watch.unlisten(self._on_change)

    def pending(self) -> int:
        return len(self.expected) - len(self.done)
