"""The local environment: etcd, kube-apiserver, kube-controller-manager, OpenBao, moto,
and on request a node that runs real Pods (harness/node.py).

One module serves the tests (a session fixture) and the demo (`make devenv-up`,
`make demo`). Every port is chosen free at start, every program logs into the
run folder, readiness waits have clear timeouts and print the log of what
failed, and teardown stops exactly the processes that were started.

When SECRETSYNC_TEST_KUBECONFIG names an existing cluster (kind, minikube, a
cloud cluster), that cluster is used and no control plane is started; OpenBao
and moto still run here.

Command line (from the repository root)::

    python -m harness.devenv up   [--dir .devenv] [--node]   # start, write .devenv/env, return
    python -m harness.devenv down [--dir .devenv]            # stop what `up` started
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import functools
import json
import os
import secrets
import shlex
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from harness import kube, pki, postgres, vaultengines
from harness import node as local_node
from harness.bao import bao_request as bao_request
from harness.processes import EnvError, Processes, free_port, http_ok, log_tail

REPO = Path(__file__).resolve().parents[2]
EXTERNAL_KUBECONFIG = "SECRETSYNC_TEST_KUBECONFIG"
AWS_REGION = "eu-west-1"
TOKEN_REVIEWER = ("kube-system", "openbao-token-reviewer")

# Generous for two busy cores; a healthy start takes a fraction of these.
ETCD_TIMEOUT = 60.0
APISERVER_TIMEOUT = 180.0
CONTROLLER_TIMEOUT = 120.0
SERVICE_TIMEOUT = 60.0
IMAGE_BUILD_TIMEOUT = 900.0  # a cold `make image` debootstraps its stand-in base


@dataclasses.dataclass(frozen=True, kw_only=True)
class Binaries:
    """Where tools/build.sh put the control plane's programs."""

    kube: Path  # kube-apiserver, kube-controller-manager, kubectl
    etcd: Path
    helm: Path
    node: local_node.NodeBinaries | None = None  # built only when a node is asked for

    @property
    def kubectl(self) -> Path:
        return self.kube / "kubectl"

    @property
    def helm_bin(self) -> Path:
        return self.helm / "helm"


def build_binaries(*, with_node: bool = False) -> Binaries:
    """Build (or find cached) the Go programs; see tools/build.sh."""
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "build.sh"), *(["--node"] if with_node else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise EnvError(f"tools/build.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    dirs = dict(line.split("=", 1) for line in proc.stdout.split())
    node_binaries = None
    if with_node:
        node_binaries = local_node.NodeBinaries(
            kube_node=Path(dirs["KUBE_NODE_BIN"]),
            containerd=Path(dirs["CONTAINERD_BIN"]),
            pause=Path(dirs["PAUSE_BIN"]),
        )
    return Binaries(
        kube=Path(dirs["KUBE_BIN"]),
        etcd=Path(dirs["ETCD_BIN"]),
        helm=Path(dirs["HELM_BIN"]),
        node=node_binaries,
    )


@functools.cache
def build_image() -> tuple[str, Path]:
    """Build (or find cached) the operator's image; see tools/image/build.sh (`make image`).
    Returns its reference and the docker-archive the node imports. Once per process: the
    tree does not change under a running test session."""
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=IMAGE_BUILD_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise EnvError(f"tools/image/build.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = dict(line.split("=", 1) for line in proc.stdout.split())
    return out["IMAGE"], Path(out["ARCHIVE"])


def _venv_bin(name: str) -> str:
    """A console script installed beside this interpreter (bao, moto_server)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise EnvError(f"{name} is not installed beside {sys.executable}; run `make setup`")
    return str(path)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DevEnv:
    """A running environment, as the tests and the demo see it."""

    run_dir: Path
    binaries: Binaries
    kubeconfig: Path
    api_server: str
    api_ca_pem: bytes  # trust anchor for the apiserver (given to OpenBao)
    external_cluster: bool
    vault_addr: str
    vault_token: str
    aws_endpoint: str
    # kube-apiserver's audit log (JSON lines), when start(audit=True) turned it on.
    audit_log: Path | None = None
    # The node that runs Pods, when start(node=True) started one.
    node: local_node.Node | None = None
    # PostgreSQL for OpenBao's database secrets engine (harness/postgres.py), whose
    # connection `postgres` at database/ OpenBao manages roles through.
    postgres_port: int = 0
    postgres_admin_password: str = dataclasses.field(default="", repr=False)

    @property
    def pg(self) -> postgres.Postgres:
        return postgres.Postgres(
            port=self.postgres_port,
            admin=postgres.ADMIN,
            admin_password=self.postgres_admin_password,
            data_dir=self.run_dir,
        )

    def exports(self) -> dict[str, str]:
        """Environment variables a shell, the operator or a test needs to reach it."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_token,
            "BAO_ADDR": self.vault_addr,
            "BAO_TOKEN": self.vault_token,
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            # moto accepts any credentials; these are dummies, never real keys.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": AWS_REGION,
            "AWS_REGION": AWS_REGION,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.postgres_port),
            **(
                {
                    "SECRETSYNC_NODE_IMAGES": " ".join(self.node.images),
                    "SECRETSYNC_POD_VAULT_ADDR": self.node.pod_vault_addr,
                    "SECRETSYNC_POD_AWS_ENDPOINT": self.node.pod_aws_endpoint,
                }
                if self.node
                else {}
            ),
        }

    def env_file_text(self) -> str:
        """Shell `export` lines, with the built tools and the venv first on PATH."""
        path = ":".join(
            [str(self.binaries.kube), str(self.binaries.helm), str(Path(sys.executable).parent)]
        )
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.exports().items()]
        lines.append(f'export PATH={shlex.quote(path)}:"$PATH"')
        return "\n".join(lines) + "\n"

    def api_client(self) -> Any:
        """An admin kubernetes.client.ApiClient."""
        return kube.client(self.kubeconfig)

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> Any:
        """Run kubectl as admin."""
        return kube.kubectl(
            self.binaries.kubectl, self.kubeconfig, *args, input_text=input_text, check=check
        )

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Wait until the CRDs are Established. `kubectl wait` fails at once, instead of
        waiting, when a CRD created a moment ago has no conditions yet: retried."""
        names = [f"crd/{name}" for name in crds]
        kube.eventually(
            lambda: (
                self.kubectl(
                    "wait", "--for=condition=Established", "--timeout=10s", *names, check=False
                ).returncode
                == 0
            ),
            timeout=timeout,
            what=f"CRDs {', '.join(crds)} to be Established",
            interval=0.5,
        )

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["api_ca_pem"] = self.api_ca_pem.decode()
        return json.dumps(data, default=str, indent=1)

    @classmethod
    def from_json(cls, text: str) -> DevEnv:
        data = json.loads(text)
        b = data.pop("binaries")
        audit_log = data.pop("audit_log", None)
        node_data = data.pop("node", None)
        node_binaries = b.get("node")
        return cls(
            run_dir=Path(data.pop("run_dir")),
            audit_log=Path(audit_log) if audit_log else None,
            binaries=Binaries(
                kube=Path(b["kube"]),
                etcd=Path(b["etcd"]),
                helm=Path(b["helm"]),
                node=local_node.NodeBinaries(**{k: Path(v) for k, v in node_binaries.items()})
                if node_binaries
                else None,
            ),
            node=local_node.Node.from_dict(node_data) if node_data else None,
            kubeconfig=Path(data.pop("kubeconfig")),
            api_ca_pem=data.pop("api_ca_pem").encode(),
            **data,
        )


# --- the control plane ------------------------------------------------------------------


def _kubeconfig(path: Path, *, server: str, keys: pki.Pki) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": b64(keys.serving_ca)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(keys.admin_cert),
                    "client-key-data": b64(keys.admin_key),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# What the audit log records when it is on (the benchmarks count the operator's requests
# with it): every request on the objects the operator reads or writes, metadata only
# (never a request or response body, so never a Secret value); nothing else.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "None", "verbs": ["watch"]},
        {
            "level": "Metadata",
            "resources": [
                {
                    "group": "",
                    "resources": ["secrets", "events", "serviceaccounts", "serviceaccounts/token"],
                },
                {"group": "secretsync.io"},
                {"group": "apps"},
            ],
        },
        {"level": "None"},
    ],
}


def _audit_flags(run_dir: Path) -> list[str]:
    policy = run_dir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={run_dir / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        # One file for the whole run: by default it is rotated at 100 MB, which a reader
        # following the file would miss.
        "--audit-log-maxsize=100000",
    ]


# What kube-controller-manager runs: owner-reference garbage collection, namespace
# deletion, default ServiceAccounts and kube-root-ca.crt always; with a node also what
# Deployments, Services and the Node itself need (without node-lifecycle the Node keeps
# its not-ready taint and nothing is ever scheduled).
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
)
NODE_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "disruption-controller",
    "pod-garbage-collector-controller",
    "job-controller",  # the chart's audit CronJob, run as a Job (tests/e2e/test_audit_cronjob.py)
)


def _start_control_plane(
    procs: Processes, binaries: Binaries, *, audit: bool = False, with_node: bool = False
) -> tuple[Path, str, bytes]:
    run_dir = procs.run_dir
    keys = pki.create(run_dir / "pki")

    etcd_port, etcd_peer = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd = procs.start(
        "etcd",
        [
            str(binaries.etcd / "etcd"),
            f"--data-dir={run_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    procs.wait_ready(
        etcd, lambda: http_ok(f"{etcd_url}/health"), timeout=ETCD_TIMEOUT, what="healthy"
    )

    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    apiserver = procs.start(
        "kube-apiserver",
        [
            str(binaries.kube / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--secure-port={api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={keys.serving_cert}",
            f"--tls-private-key-file={keys.serving_key}",
            f"--client-ca-file={keys.client_ca}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={keys.sa_public}",
            f"--service-account-signing-key-file={keys.sa_private}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # How the apiserver authenticates to a node's kubelet (logs, exec): the admin
            # certificate, which the kubelet's client CA signed.
            f"--kubelet-client-certificate={keys.admin_cert}",
            f"--kubelet-client-key={keys.admin_key}",
            # The node registers under a name no resolver knows; its address is what works.
            "--kubelet-preferred-address-types=InternalIP",
            *(_audit_flags(run_dir) if audit else []),
        ],
    )
    ctx = ssl.create_default_context(cafile=str(keys.serving_ca))
    ctx.load_cert_chain(str(keys.admin_cert), str(keys.admin_key))
    procs.wait_ready(
        apiserver,
        lambda: http_ok(f"{server}/readyz", context=ctx),
        timeout=APISERVER_TIMEOUT,
        what="/readyz",
    )
    kubeconfig = _kubeconfig(run_dir / "kubeconfig", server=server, keys=keys)

    controllers = procs.start(
        "kube-controller-manager",
        [
            str(binaries.kube / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            "--controllers=" + ",".join((*CONTROLLERS, *(NODE_CONTROLLERS if with_node else ()))),
            f"--root-ca-file={keys.serving_ca}",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    core = kubernetes.client.CoreV1Api(kube.client(kubeconfig))
    procs.wait_ready(
        controllers,
        lambda: bool(core.read_namespaced_service_account("default", "default")),
        timeout=CONTROLLER_TIMEOUT,
        what="the default ServiceAccount created",
    )
    return kubeconfig, server, keys.serving_ca.read_bytes()


def _external_cluster(kubeconfig: Path) -> tuple[str, bytes]:
    api = kube.client(kubeconfig)
    conf = api.configuration
    ca = Path(conf.ssl_ca_cert).read_bytes() if conf.ssl_ca_cert else b""
    return str(conf.host), ca


# --- OpenBao and moto ---------------------------------------------------------------------


def _start_openbao(procs: Processes) -> tuple[str, str]:
    port = free_port()
    token = "root-" + secrets.token_hex(12)
    addr = f"http://127.0.0.1:{port}"
    bao = procs.start(
        "openbao",
        [
            _venv_bin("bao"),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
    )
    procs.wait_ready(
        bao, lambda: http_ok(f"{addr}/v1/sys/health"), timeout=SERVICE_TIMEOUT, what="healthy"
    )
    return addr, token


def _configure_kubernetes_auth(
    addr: str, token: str, *, api: Any, server: str, ca_pem: bytes
) -> None:
    """Enable OpenBao's kubernetes auth against this cluster, with a token reviewer
    ServiceAccount bound to system:auth-delegator (so OpenBao may call TokenReview)."""
    namespace, name = TOKEN_REVIEWER
    core = kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    try:
        core.create_namespaced_service_account(
            namespace,
            kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
        )
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    binding = kubernetes.client.V1ClusterRoleBinding(
        metadata=kubernetes.client.V1ObjectMeta(name=f"{name}-auth-delegator"),
        role_ref=kubernetes.client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
        ),
        subjects=[
            kubernetes.client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)
        ],
    )
    try:
        rbac.create_cluster_role_binding(binding)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    reviewer_jwt = kube.token_request(
        api, namespace=namespace, service_account=name, audiences=[], seconds=7 * 24 * 3600
    )
    bao_request(addr, token, "POST", "sys/auth/kubernetes", {"type": "kubernetes"})
    bao_request(
        addr,
        token,
        "POST",
        "auth/kubernetes/config",
        {
            "kubernetes_host": server,
            "kubernetes_ca_cert": ca_pem.decode(),
            "token_reviewer_jwt": reviewer_jwt,
            "disable_local_ca_jwt": True,
        },
    )


def _start_moto(procs: Processes) -> str:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = procs.start("moto", [_venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)])
    procs.wait_ready(
        moto,
        lambda: http_ok(f"{endpoint}/moto-api/data.json"),
        timeout=SERVICE_TIMEOUT,
        what="answering",
    )
    return endpoint


# --- start and stop ---------------------------------------------------------------------------


def start(run_dir: Path, *, audit: bool = False, node: bool = False) -> tuple[DevEnv, Processes]:
    """Start everything; on failure stop what did start and raise with the culprit's log.

    `audit=True` turns on kube-apiserver's audit log (metadata of the requests on
    Secrets, Events, ServiceAccounts, workloads and secretsync.io objects) in
    <run_dir>/audit.log; it has no effect on an external cluster.

    `node=True` also starts a node that runs real Pods (harness/node.py) with the
    operator's image (`make image`) imported; it needs root, the Debian packages of
    tools/node/install-debs.sh and the local control plane. Stop it with `stop`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(run_dir)
    with_node = node
    started_node = None
    try:
        external = os.environ.get(EXTERNAL_KUBECONFIG)
        if with_node and external:
            raise EnvError(
                f"a local node needs the local control plane; unset {EXTERNAL_KUBECONFIG}"
            )
        if with_node:
            local_node.preflight()
        binaries = build_binaries(with_node=with_node)
        # Before anything starts: a broken image build fails the start at once.
        image = build_image() if with_node else None
        if external:
            kubeconfig = Path(external)
            server, ca_pem = _external_cluster(kubeconfig)
        else:
            kubeconfig, server, ca_pem = _start_control_plane(
                procs, binaries, audit=audit, with_node=with_node
            )
        aws_endpoint = _start_moto(procs)
        vault_addr, vault_token = _start_openbao(procs)
        _configure_kubernetes_auth(
            vault_addr, vault_token, api=kube.client(kubeconfig), server=server, ca_pem=ca_pem
        )
        pg = postgres.start(procs)
        vaultengines.configure(vault_addr, vault_token, pg)
        if binaries.node is not None and image is not None:
            started_node = local_node.start(
                procs,
                binaries=binaries.node,
                kubeconfig=kubeconfig,
                api_server=server,
                client_ca=run_dir / "pki" / "client-ca.crt",
                vault_addr=vault_addr,
                aws_endpoint=aws_endpoint,
                image_archives=[image],
            )
    except BaseException:
        stop(procs)
        raise
    env = DevEnv(
        run_dir=run_dir,
        binaries=binaries,
        kubeconfig=kubeconfig,
        api_server=server,
        api_ca_pem=ca_pem,
        external_cluster=bool(external),
        vault_addr=vault_addr,
        vault_token=vault_token,
        aws_endpoint=aws_endpoint,
        audit_log=run_dir / "audit.log" if audit and not external else None,
        node=started_node,
        postgres_port=pg.port,
        postgres_admin_password=pg.admin_password,
    )
    (run_dir / "devenv.json").write_text(env.to_json())
    return env, procs


def stop(procs: Processes) -> None:
    """Stop what `start` started: the node first (it undoes what its record in the run
    folder lists, which `start` wrote before making it), then every program."""
    try:
        if local_node.has_record(procs.run_dir):
            local_node.teardown(procs.run_dir, procs)
    finally:
        postgres.stop(procs)
        procs.stop_all()
        postgres.remove(procs.run_dir)


def logs_summary(procs: Processes) -> str:
    """The tail of every program's log, for a failed run."""
    return "\n".join(f"--- {s.name} ({s.log}) ---\n{log_tail(s.log)}" for s in procs.started)


def up(directory: Path, *, audit: bool = False, node: bool = False) -> int:
    """`make devenv-up`: start in the background, write <dir>/env, return."""
    if (directory / "processes.json").exists() and any(
        s.alive() for s in Processes.load(directory).started
    ):
        print(f"devenv: already running; `source {directory}/env` or `make devenv-down`")
        return 0
    begun = time.monotonic()
    env, procs = start(directory, audit=audit, node=node)
    (directory / "env").write_text(env.env_file_text())
    names = ", ".join(s.name for s in procs.started)
    print(f"devenv: {names} up in {time.monotonic() - begun:.0f}s; logs in {directory}")
    print(f"devenv: `source {directory}/env` for KUBECONFIG, VAULT_ADDR, AWS_ENDPOINT_URL and PATH")
    return 0


def down(directory: Path) -> int:
    """`make devenv-down`: stop exactly what `up` started."""
    procs = Processes.load(directory)
    names = [s.name for s in procs.started if s.alive()]
    stop(procs)
    (directory / "env").unlink(missing_ok=True)
    print(f"devenv: stopped {', '.join(names) or 'nothing (not running)'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.devenv", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--dir", type=Path, default=REPO / ".devenv")
    parser.add_argument(
        "--audit",
        action="store_true",
        help="up: turn on kube-apiserver's audit log (<dir>/audit.log)",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="up: also start a node that runs Pods (root; tools/node/install-debs.sh)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.dir.resolve(), audit=args.audit, node=args.node)
        return down(args.dir.resolve())
    except EnvError as exc:
        print(f"devenv: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
