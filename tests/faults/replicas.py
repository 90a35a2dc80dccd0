"""Operator replicas run side by side, each as its own ServiceAccount, so that the
apiserver's audit log tells their requests apart (peering and sharding cases)."""

from __future__ import annotations

import collections
import contextlib
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes

from harness import delivery, scenario
from harness import operator as op
from harness.audit import WRITE_VERBS, AuditLog
from harness.devenv import DevEnv
from harness.processes import free_port

SA_NAMESPACE = "peering-replicas"


class Replica:
    """One operator process of the group, as its own ServiceAccount (so the apiserver's
    audit log tells the replicas' requests apart), with its probes and metrics."""

    def __init__(self, env: DevEnv, name: str, log: Path) -> None:
        self.name = name
        self.identity = f"replica-{name}"  # POD_ID: its name in peering and Leases
        self.user = f"system:serviceaccount:{SA_NAMESPACE}:replica-{name}"
        self.kubeconfig = delivery.service_account_kubeconfig(
            env, SA_NAMESPACE, f"replica-{name}", env.run_dir / f"kubeconfig-replica-{name}"
        )
        self.health, self.metrics = free_port(), free_port()
        self.log = log

    def role(self) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health}/healthz", timeout=5
            ) as resp:
                return str(json.load(resp)["role"])
        except OSError:
            return None

    def metric(self, name: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None

    def active_metric(self) -> float | None:
        return self.metric("secretsync_active")

    def shards_taken(self) -> set[int]:
        """Every shard this replica took so far, as its log says ("sharding: took shard N")."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return {int(m) for m in re.findall(r"sharding: took shard (\d+)", text)}

    def reads(self) -> int:
        return len(delivery.audit_records(self.log)) if self.log.exists() else 0


def make(env: DevEnv, api: Any, names: list[str]) -> list[Replica]:
    """The replicas' ServiceAccounts (cluster-admin: the suite tests the protocol, the
    chart's RBAC is tested with Helm), and one Replica each."""
    core = kubernetes.client.CoreV1Api(api)
    with contextlib.suppress(kubernetes.client.ApiException):
        core.create_namespace(
            kubernetes.client.V1Namespace(
                metadata=kubernetes.client.V1ObjectMeta(name=SA_NAMESPACE)
            )
        )
    for name in names:
        scenario.service_account(api, SA_NAMESPACE, f"replica-{name}")
    subjects = [
        {"kind": "ServiceAccount", "name": f"replica-{n}", "namespace": SA_NAMESPACE} for n in names
    ]
    scenario.apply(
        env,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"peering-replicas-admin-{names[0]}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": subjects,
        },
    )
    return [Replica(env, n, env.run_dir / f"replica-{n}-{time.time_ns()}.log") for n in names]


def writes(audit: AuditLog, start: float, end: float, ns: str) -> collections.Counter[str]:
    """Writes on Secrets and SecretSync statuses of the namespace, by user."""
    return collections.Counter(
        r.user
        for r in audit.requests(start, end, namespace_prefix=ns, operator_only=False)
        if r.verb in WRITE_VERBS and r.resource in ("secrets", "secretsyncs/status")
    )


@contextlib.contextmanager
def running(env: DevEnv, replica: Replica, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`secretsync run *args` as this replica: its ServiceAccount, probes, metrics and
    POD_ID (its name in peering and in Leases)."""
    with op.running(
        env,
        replica.log,
        *args,
        "--health-port",
        str(replica.health),
        kubeconfig=replica.kubeconfig,
        metrics_port=replica.metrics,
        extra_env={"POD_ID": replica.identity},
    ) as proc:
        yield proc
