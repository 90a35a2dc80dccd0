"""Least privilege, proven on a real apiserver: the `kubectl auth can-i` matrices of
docs/rbac.md, asked as the chart's ServiceAccount itself (a TokenRequest token, not
impersonation), in cluster-wide and namespaced mode; and a namespaced operator that
syncs in the namespaces it serves, with nothing more than those Roles."""

from __future__ import annotations

import contextlib
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import delivery, kube, leasesetup, scenario, vaultengines
from harness import operator as op
from harness.devenv import REPO, DevEnv

pytestmark = pytest.mark.integration

RBAC_DOC = REPO / "docs" / "rbac.md"


def matrix(section: str) -> list[tuple[list[str], bool]]:
    """The rows of a can-i table in docs/rbac.md: (arguments, expected answer)."""
    text = RBAC_DOC.read_text()
    match = re.search(rf"<!-- can-i: {section} -->\n(.*?)<!-- /can-i -->", text, re.S)
    assert match, f"no can-i table {section!r} in {RBAC_DOC}"
    rows = []
    for line in match.group(1).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        args, answer = cells[1].strip("`"), cells[2]
        assert answer in ("yes", "no"), line
        rows.append((shlex.split(args), answer == "yes"))
    return rows


class Installed:
    def __init__(
        self, env: DevEnv, workdir: Path, release: str, namespace: str, *values: str
    ) -> None:
        self.env, self.name, self.namespace = env, release, namespace
        self.objects = delivery.install(env, release, namespace, *values)
        self.fullname = delivery.find(self.objects, "Deployment")["metadata"]["name"]
        account = delivery.find(self.objects, "ServiceAccount")["metadata"]["name"]
        self.kubeconfig = delivery.service_account_kubeconfig(
            env, namespace, account, workdir / f"{release}.kubeconfig"
        )

    def ask(self, args: list[str], names: dict[str, str]) -> bool:
        """One can-i question, the doc's names replaced by this install's."""
        real = []
        for arg in args:
            arg = names.get(arg, arg)
            if arg.endswith("kopfpeerings.kopf.dev/secretsync"):
                arg = arg.removesuffix("secretsync") + self.fullname
            real.append(arg)
        proc = kube.kubectl(
            self.env.binaries.kubectl, self.kubeconfig, "auth", "can-i", *real, check=False
        )
        answer = proc.stdout.strip()
        if answer not in ("yes", "no"):
            raise RuntimeError(f"kubectl auth can-i {' '.join(real)}: {proc.stderr}")
        return answer == "yes"

    def check(self, section: str, names: dict[str, str], report: Path) -> None:
        rows = matrix(section)
        lines, wrong = [], []
        for args, expected in rows:
            got = self.ask(args, names)
            lines.append(f"{'yes' if got else 'no ':3}  kubectl auth can-i {' '.join(args)}")
            if got != expected:
                wrong.append(f"can-i {' '.join(args)}: {got}, docs/rbac.md says {expected}")
        listing = kube.kubectl(
            self.env.binaries.kubectl, self.kubeconfig, "auth", "can-i", "--list", "-n", "default"
        ).stdout
        report.write_text("\n".join(lines) + "\n\n# kubectl auth can-i --list\n" + listing)
        assert len(rows) > 20
        assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rbac")


@pytest.fixture(scope="module")
def cluster_wide(delivery_env: DevEnv, workdir: Path) -> Iterator[Installed]:
    suffix = uuid.uuid4().hex[:6]
    installed = Installed(delivery_env, workdir, f"rbac-{suffix}", f"secretsync-{suffix}")
    yield installed
    delivery.uninstall(delivery_env, installed.name, installed.namespace)
    delivery.delete_namespace(delivery_env, installed.namespace)


@pytest.fixture(scope="module")
def teams(delivery_env: DevEnv) -> Iterator[tuple[str, str, str]]:
    """Two namespaces a namespaced install serves and one it does not, each a Vault team."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"team-a-{suffix}", f"team-b-{suffix}", f"team-c-{suffix}")
    for name in names:
        delivery.vault_team(delivery_env, name)
    yield names
    for name in names:
        delivery.delete_namespace(delivery_env, name)


@pytest.fixture(scope="module")
def namespaced(
    delivery_env: DevEnv, workdir: Path, teams: tuple[str, str, str]
) -> Iterator[Installed]:
    suffix = uuid.uuid4().hex[:6]
    installed = Installed(
        delivery_env,
        workdir,
        f"scoped-{suffix}",
        f"secretsync-{suffix}",
        f"watch.namespaces={{{teams[0]},{teams[1]}}}",
    )
    yield installed
    delivery.uninstall(delivery_env, installed.name, installed.namespace)
    delivery.delete_namespace(delivery_env, installed.namespace)


def test_cluster_wide_can_i_matrix_matches_docs(cluster_wide: Installed, workdir: Path) -> None:
    assert delivery.whoami(cluster_wide.env, cluster_wide.kubeconfig).startswith(
        f"system:serviceaccount:{cluster_wide.namespace}:"
    )
    cluster_wide.check(
        "cluster",
        {"secretsync-system": cluster_wide.namespace, "team-a": "default"},
        workdir / "can-i-cluster.txt",
    )


def test_namespaced_can_i_matrix_matches_docs(
    namespaced: Installed, teams: tuple[str, str, str], workdir: Path
) -> None:
    a, b, c = teams
    namespaced.check(
        "namespaced",
        {"secretsync-system": namespaced.namespace, "team-a": a, "team-b": b, "team-c": c},
        workdir / "can-i-namespaced.txt",
    )


def test_namespaced_operator_syncs_its_namespaces_and_ignores_others(
    namespaced: Installed, teams: tuple[str, str, str], workdir: Path
) -> None:
    env = namespaced.env
    api = env.api_client()
    a, b, c = teams
    for team in teams:
        delivery.vault_put(env, f"{team}/db", {"password": f"pw-{uuid.uuid4().hex}"})
    log = workdir / "namespaced.log"
    args = [*delivery.run_args(namespaced.objects), "--metrics-port", "0", "--health-port", "0"]
    assert f"--namespace={a}" in args
    assert f"--namespace={b}" in args
    with op.running(
        env,
        log,
        *args,
        kubeconfig=namespaced.kubeconfig,
        extra_env={"POD_NAMESPACE": namespaced.namespace, "POD_ID": f"{namespaced.name}-0"},
    ):
        scenario.apply(env, *(delivery.secret_sync(t, "db", f"{t}/db") for t in teams))
        for team in (a, b):
            scenario.wait_for_reason(api, team, "db", "Synced")
        time.sleep(3)  # what c would have got by now, had it been served
        assert "status" not in scenario.get_sync(api, c, "db")
        # Issued credentials: the lease state Secret is created, patched and deleted, and
        # the lease revoked, with nothing but the namespaced Roles.
        leasesetup.bind(env, api, a)
        vaultengines.database_role(env, a, default_ttl="10m", max_ttl="1h")
        scenario.apply(
            env,
            leasesetup.store(env, a, name="issuer"),
            leasesetup.database_sync_of("issuer", a, "issued"),
        )
        scenario.wait_for_reason(api, a, "issued", "Synced")
        assert len(leasesetup.database_leases(env, a)) == 1
        env.kubectl("delete", scenario.SECRET_SYNCS, "-n", a, "issued")
        kube.eventually(
            lambda: scenario.secret(api, a, "secretsync-lease-issued") is None,
            timeout=20,
            what="the lease state deleted",
        )
        assert leasesetup.database_leases(env, a) == []
    assert scenario.secret(api, c, "db") is None
    # It ran as one of a peering group (a KopfPeering in each served namespace) ...
    assert "Resuming operations" in log.read_text()
    # ... with no permission missing, and it never read c's remote key.
    assert delivery.refusals(log) == []
    assert {r["secretsync"] for r in delivery.audit_records(log)} == {
        f"{a}/db",
        f"{b}/db",
        f"{a}/issued",
    }


def test_sharded_replicas_sync_every_namespace_with_only_the_charts_rbac(
    delivery_env: DevEnv, cluster_wide: Installed, workdir: Path, teams: tuple[str, str, str]
) -> None:
    """Two replicas of a sharded install (cluster-wide), as its ServiceAccount: the
    Leases, the namespace list and the per-namespace watches need nothing more.
    (`cluster_wide` first: its install brings the CRDs the teams' stores need.)"""
    env = delivery_env
    api = env.api_client()
    suffix = uuid.uuid4().hex[:6]
    installed = Installed(
        env,
        workdir,
        f"shards-{suffix}",
        f"secretsync-{suffix}",
        "replicaCount=2",
        "peering.enabled=false",
        "sharding.shards=4",
    )
    try:
        args = [*delivery.run_args(installed.objects), "--metrics-port", "0", "--health-port", "0"]
        assert "--shards=4" in args
        for team in teams:
            delivery.vault_put(env, f"{team}/sharded", {"password": f"pw-{uuid.uuid4().hex}"})
        logs = [workdir / f"sharded-{i}.log" for i in range(2)]
        with contextlib.ExitStack() as stack:
            for i, log in enumerate(logs):
                stack.enter_context(
                    op.running(
                        env,
                        log,
                        *args,
                        kubeconfig=installed.kubeconfig,
                        extra_env={
                            "POD_NAMESPACE": installed.namespace,
                            "POD_ID": f"{installed.fullname}-{i}",
                        },
                    )
                )
            scenario.apply(
                env, *(delivery.secret_sync(t, "sharded", f"{t}/sharded") for t in teams)
            )
            for team in teams:
                scenario.wait_for_reason(api, team, "sharded", "Synced", timeout=90)
        for log in logs:
            assert delivery.refusals(log) == [], log.read_text()[-2000:]
        # Every namespace read by exactly one replica (the teams also hold the namespaced
        # test's SecretSyncs, which these replicas serve too: only ours are counted).
        ours = {f"{t}/sharded" for t in teams}
        readers = [{r["secretsync"] for r in delivery.audit_records(log)} & ours for log in logs]
        assert sorted(k for keys in readers for k in keys) == sorted(ours)
    finally:
        delivery.uninstall(env, installed.name, installed.namespace)
        delivery.delete_namespace(env, installed.namespace)
