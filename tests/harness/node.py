"""A one-node Kubernetes beside the local control plane, for tests that run real Pods.

Opt-in: `devenv.start(run_dir, node=True)` or `python -m harness.devenv up --node`.
On top of the control plane that devenv starts it runs, from this machine's caches
(`tools/build.sh --node`, `make image`) and Debian packages (tools/node/install-debs.sh):

- containerd 2.x with Debian's runc; its state, sockets and images belong to the run;
- kubelet (cgroup v1 with the cgroupfs driver) and kube-scheduler of the control
  plane's own release;
- a Pod network: the bridge `ssync0` with the CNI bridge and host-local plugins. A Pod
  gets an address and a single route, to the Service range; there is no default route and
  IP forwarding stays off, so no packet of a Pod can leave the machine;
- dnsmasq on the bridge address, answering `kubernetes.default.svc` and the names of
  the cluster's Services, and nothing else;
- harness/serviceproxy.py in place of kube-proxy: each ClusterIP Service port forwarded
  (on loopback, through one DNAT rule in the node's chain) to its ready endpoints;
- DNAT rules on the bridge (with route_localnet=1 there) that take Pods to the programs
  that listen on loopback only: the Service IP 10.0.0.1:443 to kube-apiserver, and
  <bridge address>:<port> to OpenBao and moto.

Everything it changes on the host (processes, mounts, cgroups, the bridge, iptables
rules, sysctls, the few host paths kubelet and containerd write whatever their flags
say) is written to <run_dir>/node.json *before* it is made, so that `teardown` undoes
exactly that, from this process or from `python -m harness.devenv down`, even after a
crash half-way through the start. One node runs on a machine at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from harness import kube, pki
from harness.processes import EnvError, Processes, free_port, http_ok, log_tail, stop

NODE_NAME = "secretsync-node"
BRIDGE = "ssync0"
POD_SUBNET = ipaddress.ip_network("10.89.0.0/24")
BRIDGE_IP = "10.89.0.1"
SERVICE_IP = pki.SERVICE_IP  # the `kubernetes` Service; on the apiserver's certificate
# The apiserver's --service-cluster-ip-range (devenv.py): every Service's ClusterIP.
SERVICE_CIDR = ipaddress.ip_network("10.0.0.0/24")
CLUSTER_DOMAIN = "cluster.local"
# The names the Pods' DNS answers with SERVICE_IP; besides, the Services' names that
# harness/serviceproxy.py writes into DNS_HOSTS_DIR. Other names under cluster.local
# and svc get NXDOMAIN, any other name is refused: nothing is forwarded.
API_NAMES = ("kubernetes.default.svc", f"kubernetes.default.svc.{CLUSTER_DOMAIN}")
POD_API_SERVER = "https://kubernetes.default.svc"
DNS_HOSTS_DIR = "dns-hosts"  # in the run folder

# Debian's containernetworking-plugins.
CNI_BIN = Path("/usr/lib/cni")

CONTAINERD_TIMEOUT = 60.0
NODE_READY_TIMEOUT = 180.0
SCHEDULER_TIMEOUT = 60.0
DNS_TIMEOUT = 20.0
SERVICE_PROXY_TIMEOUT = 30.0

# Host paths that kubelet, containerd or the CNI plugins write whatever their flags say
# (or that they might: the list errs on the side of watching). Teardown removes the ones
# that did not exist before the node started; in those that did, only the run's entries.
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/kubelet/device-plugins",
    "/var/log/containers",
    "/var/log/pods",
    "/etc/cni",
    "/etc/cni/net.d",
    "/etc/cni/net.d/cni.lock",
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/var/lib/cni/results",
    "/var/lib/containerd",
    "/opt/containerd",
    "/etc/containerd",
    "/run/nri",
    "/run/cdi",
    "/etc/cdi",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
)
# What kubelet sets on the host at start (its "kernel tunables"), restored at teardown.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeBinaries:
    """Where `tools/build.sh --node` put the node's programs."""

    kube_node: Path  # kubelet, kube-scheduler
    containerd: Path  # containerd, containerd-shim-runc-v2, ctr
    pause: Path  # the Pod sandbox program


@dataclasses.dataclass(frozen=True, kw_only=True)
class Node:
    """A running node, as tests see it. The pod_* addresses are the ones that work from
    inside a Pod (and only there)."""

    name: str
    containerd_socket: Path
    ctr: Path
    images: list[str]  # references imported into containerd's k8s.io namespace
    pod_api_server: str
    pod_vault_addr: str
    pod_aws_endpoint: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        return cls(
            **{
                **data,
                "containerd_socket": Path(data["containerd_socket"]),
                "ctr": Path(data["ctr"]),
            }
        )


# --- the record of what the run changed on the host --------------------------------------------


@dataclasses.dataclass(kw_only=True)
class _Record:
    run_dir: str
    token: str  # names the run's host objects: /run/ssync-<token>, chains, cgroup root
    bridge: str | None = None
    nat_chain: str | None = None
    filter_chain: str | None = None
    sysctls: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> before
    host_paths: dict[str, bool] = dataclasses.field(default_factory=dict)  # path -> existed
    host_children: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    cgroups: bool = False  # whether the run's cgroup root was (being) made
    torn_down: bool = False

    @property
    def sockets_dir(self) -> Path:
        # Unix socket paths are limited to 107 bytes; a run folder can be long, so the
        # sockets live in a short folder of their own.
        return Path(f"/run/ssync-{self.token}")

    @property
    def cgroup_root(self) -> str:
        return f"/ssync-{self.token}"

    @property
    def cni_network(self) -> str:
        return f"secretsync-{self.token}"

    def save(self) -> None:
        path = Path(self.run_dir) / "node.json"
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, run_dir: Path) -> _Record | None:
        path = run_dir / "node.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def has_record(run_dir: Path) -> bool:
    """Whether a node was (at least partly) started in this run folder and not torn down."""
    record = _Record.load(run_dir)
    return record is not None and not record.torn_down


# --- small helpers -----------------------------------------------------------------------------


def _run(*argv: str | Path, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise EnvError(
            f"`{' '.join(map(str, argv))}` failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout


def _which(name: str) -> str:
    # Debian puts ip, iptables, dnsmasq and runc in sbin, which a CI PATH may lack.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise EnvError(f"{name} is not installed; run `bash tools/node/install-debs.sh`")
    return found


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def _iptables(*args: str, check: bool = True) -> str:
    # -w: wait for the xtables lock rather than fail when another program holds it.
    return _run(_which("iptables"), "-w", *args, check=check)


def _mounts_under(prefixes: Sequence[str]) -> list[str]:
    """Mount points (deepest first) at or below any of the prefixes."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _pids_with_cmdline_part(part: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if part.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def _cgroup_hierarchies(*, unified: bool = False) -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, pids, ...; name=systemd too), and
    with unified=True the cgroup2 one that a hybrid machine mounts beside them (runc
    creates the Pods' cgroups there too)."""
    kinds = ("cgroup", "cgroup2") if unified else ("cgroup",)
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, *_ = line.split()
        if fstype in kinds:
            found.append(Path(point))
    return found


def dns_query(name: str, server: str, *, timeout: float = 2.0) -> list[str]:
    """The A records a DNS server gives for a name (an empty list for NXDOMAIN)."""
    query_id = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        reply = sock.recv(4096)
    _, flags, _, answers, _, _ = struct.unpack(">HHHHHH", reply[:12])
    if flags & 0xF:  # an error code: NXDOMAIN, REFUSED, ...
        return []
    offset = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        # The name is a compression pointer (two bytes) in dnsmasq's answers; skip
        # labels in case it is not.
        while reply[offset] != 0 and reply[offset] & 0xC0 != 0xC0:
            offset += reply[offset] + 1
        offset += 2 if reply[offset] & 0xC0 == 0xC0 else 1
        rtype, _, _, length = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return addresses


# --- images ------------------------------------------------------------------------------------


def _pause_archive(pause_bin: Path, out: Path, ref: str) -> Path:
    """A docker-archive of a scratch image that holds only the sandbox program.

    Made by hand (one layer, one config) so that the node needs no image builder; the
    layer is byte-for-byte reproducible."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = pause_bin.read_bytes()
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        },
        sort_keys=True,
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_id}.json", "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    with tarfile.open(out, mode="w") as tar:
        for name, blob in (
            ("manifest.json", manifest),
            (f"{config_id}.json", config),
            (f"{diff_id}/layer.tar", layer_bytes),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out


def _ctr(binaries: NodeBinaries, socket_path: Path, *args: str, timeout: float = 300) -> str:
    # ctr 2.x wants an absolute socket path (a relative one is taken for a TCP address).
    return _run(
        binaries.containerd / "ctr",
        "--address",
        str(socket_path.resolve()),
        "--namespace",
        "k8s.io",
        *args,
        timeout=timeout,
    )


# --- start -------------------------------------------------------------------------------------


def start(
    procs: Processes,
    *,
    binaries: NodeBinaries,
    kubeconfig: Path,
    api_server: str,
    client_ca: Path,
    vault_addr: str,
    aws_endpoint: str,
    image_archives: Sequence[tuple[str, Path]] = (),
) -> Node:
    """Start the node's parts into procs and wait until the Node is Ready.

    `image_archives` are (reference, docker-archive) pairs to import, such as the
    operator's image that `make image` exports. On failure the caller tears down
    (devenv.stop), which undoes what the record says was made."""
    run_dir = procs.run_dir
    if has_record(run_dir):
        raise EnvError(f"{run_dir} holds a node already; `python -m harness.devenv down` it")
    record = _Record(
        run_dir=str(run_dir), token=hashlib.sha256(str(run_dir).encode()).hexdigest()[:8]
    )
    _snapshot_host(record)
    record.save()

    def port(url: str) -> int:
        return int(url.rsplit(":", 1)[1].split("/")[0])

    vault_port, aws_port = port(vault_addr), port(aws_endpoint)
    _network(
        record,
        forwards=[
            (SERVICE_IP, 443, port(api_server)),
            (BRIDGE_IP, vault_port, vault_port),
            (BRIDGE_IP, aws_port, aws_port),
        ],
    )
    _dns(procs, hosts_dir=run_dir / DNS_HOSTS_DIR)
    pause_ref = f"localhost/secretsync-pause:{binaries.pause.name.removeprefix('pause-')}"
    socket_path = _containerd(procs, record, binaries, pause_ref=pause_ref)
    pause_archive = _pause_archive(binaries.pause / "pause", run_dir / "pause.tar", pause_ref)
    images = _import_images(binaries, socket_path, [(pause_ref, pause_archive), *image_archives])
    _kubelet(
        procs,
        record,
        binaries,
        kubeconfig=kubeconfig,
        socket_path=socket_path,
        client_ca=client_ca,
    )
    _scheduler(procs, binaries, kubeconfig=kubeconfig)
    _service_proxy(procs, record, kubeconfig=kubeconfig, hosts_dir=run_dir / DNS_HOSTS_DIR)
    wait_ready(procs, kubeconfig)
    if _read_sysctl("net/ipv4/ip_forward") != record.sysctls["net/ipv4/ip_forward"]:
        raise EnvError("IP forwarding was turned on while the node started: Pods could leave")
    return Node(
        name=NODE_NAME,
        containerd_socket=socket_path,
        ctr=binaries.containerd / "ctr",
        images=images,
        pod_api_server=POD_API_SERVER,
        pod_vault_addr=f"http://{BRIDGE_IP}:{vault_port}",
        pod_aws_endpoint=f"http://{BRIDGE_IP}:{aws_port}",
    )


def preflight() -> None:
    """Fail at once, before anything starts, when the node cannot run here."""
    if os.geteuid() != 0:
        raise EnvError("the node needs root (network namespaces, mounts, cgroups, iptables)")
    for program in ("ip", "iptables", "dnsmasq", "runc", "umount"):
        _which(program)
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN / plugin).exists():
            raise EnvError(
                f"CNI plugin {CNI_BIN / plugin} is missing; run tools/node/install-debs.sh"
            )
    if not _cgroup_hierarchies():
        # Untested on a cgroup v2-only host, so refused rather than half working.
        raise EnvError("the node runs on cgroup v1 hosts only (these machines); none found")
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        owner = Path(f"/sys/class/net/{BRIDGE}/ifalias").read_text().strip()
        if not _reclaim_stale(Path(owner) if owner else None):
            raise EnvError(
                f"the bridge {BRIDGE} exists already: another node runs on this machine "
                f"(its run folder: {owner or 'unknown'}); `python -m harness.devenv down "
                "--dir` it"
            )


def _reclaim_stale(run_dir: Path | None) -> bool:
    """A node whose programs all died with their run (a test session killed before its
    teardown) leaves its bridge, rules and mounts behind, and every later node would be
    refused: undo them from its record, as `devenv down` would. A node with a program
    still running belongs to a run in progress and is left alone (False)."""
    if run_dir is None or not has_record(run_dir) or not (run_dir / "processes.json").exists():
        return False
    procs = Processes.load(run_dir)
    if any(s.alive() for s in procs.started):
        return False
    print(f"node: tearing down the node left behind by a dead run in {run_dir}", file=sys.stderr)
    teardown(run_dir, procs)
    return True


def _snapshot_host(record: _Record) -> None:
    """What exists before the node starts, so that teardown removes only what it adds."""
    preflight()
    for path in HOST_PATHS:
        p = Path(path)
        record.host_paths[path] = p.exists() or p.is_symlink()
        if p.is_dir():
            record.host_children[path] = sorted(c.name for c in p.iterdir())
    for name in ("net/ipv4/ip_forward", *KUBELET_SYSCTLS):
        value = _read_sysctl(name)
        if value is not None:
            record.sysctls[name] = value


def _network(record: _Record, *, forwards: Sequence[tuple[str, int, int]]) -> None:
    """The bridge, and the rules that let Pods reach loopback services and nothing else."""
    ip = _which("ip")
    record.bridge = BRIDGE
    record.save()
    _run(ip, "link", "add", BRIDGE, "type", "bridge")
    # The alias names the owner, for the message another run gets (_snapshot_host).
    _run(ip, "link", "set", BRIDGE, "alias", record.run_dir)
    _run(ip, "addr", "add", f"{BRIDGE_IP}/{POD_SUBNET.prefixlen}", "dev", BRIDGE)
    _run(ip, "link", "set", BRIDGE, "up")
    # Packets from Pods may then be DNAT'ed to 127.0.0.1 and answered from there.
    _sysctl_path(f"net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1")

    record.nat_chain = f"SSYNC-DNAT-{record.token}"
    record.filter_chain = f"SSYNC-IN-{record.token}"
    record.save()
    nat = record.nat_chain
    _iptables("-t", "nat", "-N", nat)
    for address, port, target in forwards:
        _iptables(
            "-t", "nat", "-A", nat, "-d", f"{address}/32", "-p", "tcp", "--dport", str(port),
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{target}",
        )  # fmt: skip
    comment = ["-m", "comment", "--comment", f"secretsync node {record.token}"]
    _iptables("-t", "nat", "-I", "PREROUTING", "-i", BRIDGE, *comment, "-j", nat)
    # What a Pod may open on this machine: the forwarded services and DNS. Anything else
    # listening on a host address (an SSH server, the kubelet) is refused to Pods.
    chain = record.filter_chain
    _iptables("-N", chain)
    for rule in (
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED,DNAT", "-j", "ACCEPT"],
        ["-d", BRIDGE_IP, "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
        ["-d", BRIDGE_IP, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
        ["-j", "REJECT"],
    ):
        _iptables("-A", chain, *rule)
    _iptables("-I", "INPUT", "-i", BRIDGE, *comment, "-j", chain)


def _dns(procs: Processes, *, hosts_dir: Path) -> None:
    """dnsmasq on the bridge address: the API's names and the Services' (from the hosts
    files serviceproxy writes into hosts_dir, re-read when they change), NXDOMAIN for the
    rest."""
    hosts_dir.mkdir(parents=True, exist_ok=True)
    args = [
        _which("dnsmasq"),
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        f"--listen-address={BRIDGE_IP}",
        "--bind-interfaces",
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        "--user=root",
        # Every name below these is ours to answer: no query is ever forwarded.
        f"--local=/{CLUSTER_DOMAIN}/",
        "--local=/svc/",
        *(f"--address=/{name}/{SERVICE_IP}" for name in API_NAMES),
        f"--hostsdir={hosts_dir}",
    ]
    dnsmasq = procs.start("dnsmasq", args)
    procs.wait_ready(
        dnsmasq,
        lambda: dns_query(API_NAMES[-1], BRIDGE_IP, timeout=0.5) == [SERVICE_IP],
        timeout=DNS_TIMEOUT,
        what=f"an answer for {API_NAMES[-1]}",
    )


def _service_proxy(procs: Processes, record: _Record, *, kubeconfig: Path, hosts_dir: Path) -> None:
    """harness/serviceproxy.py, with the node's nat chain to add its rules to."""
    assert record.nat_chain is not None, "the network is made before the service proxy"
    proxy = procs.start(
        "service-proxy",
        [
            sys.executable,
            "-m",
            "harness.serviceproxy",
            f"--kubeconfig={kubeconfig}",
            f"--nat-chain={record.nat_chain}",
            f"--hosts-dir={hosts_dir}",
        ],
        # The harness package, whatever the caller's working directory was; and sbin, for
        # iptables.
        env={
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin",
        },
    )
    procs.wait_ready(
        proxy,
        lambda: (hosts_dir / "services").exists(),
        timeout=SERVICE_PROXY_TIMEOUT,
        what="its first round (the Services' hosts file written)",
    )


def _containerd(
    procs: Processes, record: _Record, binaries: NodeBinaries, *, pause_ref: str
) -> Path:
    run_dir = Path(record.run_dir)
    sockets = record.sockets_dir
    sockets.mkdir(mode=0o700)
    base = run_dir / "containerd"
    (run_dir / "cni" / "net.d").mkdir(parents=True)
    cni = {
        "cniVersion": "1.0.0",
        "name": record.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                # Not the gateway: the plugin would then turn IP forwarding on, and Pods
                # would get a default route. Their one route goes to the Services.
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(run_dir / "cni" / "ipam"),
                    "ranges": [[{"subnet": str(POD_SUBNET), "gateway": BRIDGE_IP}]],
                    # Services only (the apiserver's and the others, which
                    # serviceproxy forwards): no default route.
                    "routes": [{"dst": str(SERVICE_CIDR), "gw": BRIDGE_IP}],
                },
            }
        ],
    }
    (run_dir / "cni" / "net.d" / "10-secretsync.conflist").write_text(json.dumps(cni, indent=1))
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    config = f"""\
# containerd for the one-node test environment (tests/harness/node.py).
version = 4
root = '{base / "root"}'
state = '{base / "state"}'
imports = []
# Plugins that would write host paths (/opt, /etc/cdi, /run/nri) and that Pods here
# do not need.
disabled_plugins = [
  'io.containerd.nri.v1.nri',
  'io.containerd.internal.v1.opt',
  'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.erofs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.image-verifier.v1.bindir',
]

[plugins.'io.containerd.server.v1.grpc']
  address = '{sockets / "containerd.sock"}'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '{sockets / "containerd.sock.ttrpc"}'
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '{sockets / "s"}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  # Nothing can be pulled here: images are imported, and kubelet must never GC these.
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{pause_ref}'

[{runtime}]
  # runc cannot lower its own oom_score_adj on these machines (no CAP_SYS_RESOURCE):
  # without this every sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  enable_criu = false
  [{runtime}.containerd]
    default_runtime_name = 'runc'
    [{runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = '{_which("runc")}'
        Root = '{sockets / "runc"}'
        SystemdCgroup = false
  [{runtime}.cni]
    bin_dirs = ['{CNI_BIN}']
    conf_dir = '{run_dir / "cni" / "net.d"}'
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""
    (base).mkdir(parents=True)
    (base / "config.toml").write_text(config)
    socket_path = sockets / "containerd.sock"
    # The shim is looked up on PATH.
    env = {"PATH": f"{binaries.containerd}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    containerd = procs.start(
        "containerd",
        [str(binaries.containerd / "containerd"), "--config", str(base / "config.toml")],
        env=env,
    )

    def cri_ready() -> bool:
        plugins = _ctr(binaries, socket_path, "plugins", "ls", timeout=10)
        return any(
            line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
            for line in plugins.splitlines()
        )

    procs.wait_ready(
        containerd, cri_ready, timeout=CONTAINERD_TIMEOUT, what="its CRI plugin loaded"
    )
    return socket_path


def _import_images(
    binaries: NodeBinaries,
    socket_path: Path,
    archives: Sequence[tuple[str, Path]],
) -> list[str]:
    """Import docker-archives into the k8s.io namespace, where the CRI looks."""
    for ref, archive in archives:
        if not archive.exists():
            raise EnvError(f"the image archive {archive} for {ref} is missing; run `make image`")
        _ctr(binaries, socket_path, "images", "import", str(archive))
    listed = _ctr(binaries, socket_path, "images", "ls", "--quiet", timeout=30).split()
    missing = [ref for ref, _ in archives if ref not in listed]
    if missing:
        raise EnvError(f"containerd does not list {missing} after import; it lists {listed}")
    return [ref for ref, _ in archives]


def _kubelet(
    procs: Processes,
    record: _Record,
    binaries: NodeBinaries,
    *,
    kubeconfig: Path,
    socket_path: Path,
    client_ca: Path,
) -> None:
    run_dir = Path(record.run_dir)
    # kubelet with the cgroupfs driver wants its cgroup root to exist in every hierarchy;
    # one of the run's own keeps the Pods' cgroups apart from anything else's.
    record.cgroups = True
    record.save()
    for hierarchy in _cgroup_hierarchies():
        path = hierarchy / record.cgroup_root.lstrip("/")
        path.mkdir()
        if (hierarchy / "cpuset.cpus").exists():
            # A new cpuset cgroup starts with no CPUs and no memory nodes.
            for name in ("cpuset.cpus", "cpuset.mems"):
                (path / name).write_text((hierarchy / name).read_text())
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Serves logs and exec to the apiserver (with the admin certificate: devenv's
        # --kubelet-client-certificate) on the node address; Pods are refused there.
        "address": BRIDGE_IP,
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": free_port(),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # cgroup v1 machines: kubelet 1.36 refuses them unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": record.cgroup_root,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{socket_path}",
        "clusterDNS": [BRIDGE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # Not the host's resolv.conf: its search domains mean nothing to Pods here.
        "resolvConf": "",
        # No iptables chains of kubelet's own on the host.
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(run_dir / "pod-logs"),
        "volumePluginDir": str(run_dir / "kubelet-volume-plugins"),
        # Images are imported and cannot be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A busy or nearly full disk must not evict the test's Pods.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # Sooner than the defaults (10s, 1m): the Node turns Ready, and mounted Secrets
        # and ConfigMaps follow their changes, within a test's patience.
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
    }
    config_path = run_dir / "kubelet-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    procs.start(
        "kubelet",
        [
            str(binaries.kube_node / "kubelet"),
            f"--config={config_path}",
            # The admin identity: the local apiserver authorizes with RBAC only (no Node
            # authorizer), and this is a throwaway test cluster.
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={run_dir / 'kubelet'}",
            f"--cert-dir={run_dir / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={BRIDGE_IP}",
            "--v=1",
        ],
        env={"PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"},
    )


def _scheduler(procs: Processes, binaries: NodeBinaries, *, kubeconfig: Path) -> None:
    port = free_port()
    scheduler = procs.start(
        "kube-scheduler",
        [
            str(binaries.kube_node / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
        ],
    )
    # Its serving certificate is self-signed; /healthz is all that is asked.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    procs.wait_ready(
        scheduler,
        lambda: http_ok(f"https://127.0.0.1:{port}/healthz", context=insecure),
        timeout=SCHEDULER_TIMEOUT,
        what="/healthz",
    )


def wait_ready(procs: Processes, kubeconfig: Path, *, timeout: float = NODE_READY_TIMEOUT) -> None:
    """Wait until the Node is Ready and schedulable (no not-ready taint left)."""
    kubelet = next(s for s in procs.started if s.name == "kubelet")
    core = kubernetes.client.CoreV1Api(kube.client(kubeconfig))

    def ready() -> bool:
        node = core.read_node(NODE_NAME)
        status, spec = node.status, node.spec
        conditions = {c.type: c.status for c in (status.conditions if status else None) or []}
        taints = [t.key for t in (spec.taints if spec else None) or [] if t.effect == "NoSchedule"]
        return conditions.get("Ready") == "True" and not taints

    procs.wait_ready(kubelet, ready, timeout=timeout, what=f"Node {NODE_NAME} Ready")


# --- teardown ----------------------------------------------------------------------------------


def teardown(run_dir: Path, procs: Processes) -> None:
    """Undo what the record in run_dir says the node made, in reverse: Pods' processes,
    the node's programs, mounts, network namespaces, iptables rules, the bridge,
    sysctls, host paths and cgroups. Every step runs even if an earlier one failed; the
    failures are raised together at the end."""
    record = _Record.load(run_dir)
    if record is None or record.torn_down:
        return
    errors: list[str] = []
    timings = []

    def step(what: str, action: Any, *args: Any) -> None:
        begun = time.monotonic()
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 - every step runs; failures are reported
            errors.append(f"{what}: {exc}")
        timings.append(f"{time.monotonic() - begun:6.2f}s {what}")

    by_name = {s.name: s for s in procs.started}
    # The programs that would restart containers go first.
    # The service proxy too: it adds rules to the node's chain, which is removed below.
    for name in ("service-proxy", "kube-scheduler", "kubelet"):
        if name in by_name:
            step(f"stopping {name}", functools.partial(stop, by_name[name], grace=10.0))
    step("killing the Pods' processes", _kill_pods, record)
    if "containerd" in by_name:
        step("stopping containerd", functools.partial(stop, by_name["containerd"], grace=10.0))
    step("killing containerd's shims", _kill_shims, record)
    if "dnsmasq" in by_name:
        step("stopping dnsmasq", functools.partial(stop, by_name["dnsmasq"], grace=5.0))
    step("unmounting", _unmount, record)
    step("removing iptables rules", _remove_iptables, record)
    step("removing the bridge", _remove_bridge, record)
    step("restoring sysctls", _restore_sysctls, record)
    step("removing host paths", _remove_host_paths, record)
    step("removing cgroups", _remove_cgroups, record)
    step("removing the run's node state", _remove_state, record)
    errors.extend(f"left behind: {thing}" for thing in _leftovers(record))
    # Where the time went, for whoever makes teardown faster.
    (run_dir / "node-teardown.log").write_text("\n".join([*timings, *errors]) + "\n")
    if errors:
        raise EnvError("node teardown incomplete:\n  " + "\n  ".join(errors))
    record.torn_down = True
    record.save()


def _leftovers(record: _Record) -> list[str]:
    """Whatever the record names that is still there (empty after a clean teardown)."""
    left = []
    marker = str(record.sockets_dir) + "/"
    if pids := [p for p in _pids_with_cmdline_part(marker) if p != os.getpid()]:
        left.append(f"processes using {marker}: {pids}")
    if pids_in_cgroups := _cgroup_pids(record):
        left.append(f"processes in {record.cgroup_root}: {sorted(pids_in_cgroups)}")
    left.extend(f"cgroup {root}" for root in _cgroup_roots(record))
    prefixes = [record.run_dir, str(record.sockets_dir), *_created_host_paths(record)]
    left.extend(f"mount {point}" for point in _mounts_under(prefixes))
    if record.bridge and Path(f"/sys/class/net/{record.bridge}").exists():
        left.append(f"bridge {record.bridge}")
    for table, chain in (("nat", record.nat_chain), ("filter", record.filter_chain)):
        if chain and _chain_exists(table, chain):
            left.append(f"iptables chain {table}/{chain}")
    left.extend(f"host path {p}" for p in _created_host_paths(record) if Path(p).exists())
    if record.sockets_dir.exists():
        left.append(f"host path {record.sockets_dir}")
    for name, before in record.sysctls.items():
        now = _read_sysctl(name)
        if now is not None and now.split() != before.split():
            left.append(f"sysctl {name} = {now} (was {before})")
    return left


def _cgroup_roots(record: _Record) -> list[Path]:
    """The run's cgroup root in every hierarchy where it exists (named by the run's token,
    so never anything else's)."""
    if not record.cgroups:
        return []
    roots = [h / record.cgroup_root.lstrip("/") for h in _cgroup_hierarchies(unified=True)]
    return [r for r in roots if r.exists()]


def _cgroup_pids(record: _Record) -> set[int]:
    pids: set[int] = set()
    for root in _cgroup_roots(record):
        for procs_file in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs_file.read_text().split())
    return pids


def _kill_pods(record: _Record) -> None:
    """SIGKILL every process in the run's cgroups (every container, every sandbox)."""
    for _ in range(50):
        pids = _cgroup_pids(record)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise EnvError(f"processes left in cgroup {record.cgroup_root}: {sorted(_cgroup_pids(record))}")


def _kill_shims(record: _Record) -> None:
    """containerd 2.x leaves a shim per Pod; they name the run's socket folder."""
    marker = str(record.sockets_dir) + "/"
    for _ in range(50):
        pids = [p for p in _pids_with_cmdline_part(marker) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise EnvError(f"shims still running: {_pids_with_cmdline_part(marker)}")


def _created_host_paths(record: _Record) -> list[str]:
    return [p for p, existed in record.host_paths.items() if not existed]


def _unmount(record: _Record) -> None:
    prefixes = [record.run_dir, str(record.sockets_dir), *_created_host_paths(record)]
    for _ in range(5):
        points = _mounts_under(prefixes)
        if not points:
            return
        for point in points:
            # Lazy: a mount still referenced (a dying process) goes once released.
            _run("umount", "--lazy", point, check=False)
    raise EnvError(f"still mounted: {_mounts_under(prefixes)}")


def _remove_iptables(record: _Record) -> None:
    comment = ["-m", "comment", "--comment", f"secretsync node {record.token}"]
    for table, hook, chain in (
        ("nat", "PREROUTING", record.nat_chain),
        ("filter", "INPUT", record.filter_chain),
    ):
        if chain is None:
            continue
        while _chain_jumped(table, hook, chain):
            _iptables("-t", table, "-D", hook, "-i", BRIDGE, *comment, "-j", chain)
        if _chain_exists(table, chain):
            _iptables("-t", table, "-F", chain)
            _iptables("-t", table, "-X", chain)


def _chain_exists(table: str, chain: str) -> bool:
    return bool(_iptables("-t", table, "-S", chain, check=False).strip())


def _chain_jumped(table: str, hook: str, chain: str) -> bool:
    return f"-j {chain}" in _iptables("-t", table, "-S", hook)


def _remove_bridge(record: _Record) -> None:
    if record.bridge is None or not Path(f"/sys/class/net/{record.bridge}").exists():
        return
    alias = Path(f"/sys/class/net/{record.bridge}/ifalias").read_text().strip()
    if alias and alias != record.run_dir:
        raise EnvError(f"the bridge {record.bridge} now belongs to {alias}; left alone")
    ip = _which("ip")
    # Host ends of Pods' veth pairs whose namespace outlived the Pod.
    for port in Path(f"/sys/class/net/{record.bridge}/brif").iterdir():
        _run(ip, "link", "del", port.name, check=False)
    _run(ip, "link", "del", record.bridge)


def _restore_sysctls(record: _Record) -> None:
    for name, before in record.sysctls.items():
        now = _read_sysctl(name)
        if now is not None and now.split() != before.split():
            _sysctl_path(name).write_text(before)


def _remove_host_paths(record: _Record) -> None:
    created = _created_host_paths(record)
    # Deepest first, so that a folder is empty of our things when its turn comes.
    for path in sorted(created, key=lambda p: p.count("/"), reverse=True):
        p = Path(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    # In folders that existed before: only the entries that are the run's.
    for path, before in record.host_children.items():
        p = Path(path)
        if not p.is_dir():
            continue
        # libcni's cache: <network>-<container id>-<interface>, and the loopback's
        # cni-loopback-<container id>-lo for the same sandboxes.
        network = record.cni_network + "-"
        sandboxes = {
            c.name.removeprefix(network).rsplit("-", 1)[0]
            for c in p.iterdir()
            if c.name.startswith(network)
        }
        for child in p.iterdir():
            if child.name in before:
                continue
            if path == "/var/log/containers":
                ours = child.is_symlink() and os.readlink(child).startswith(record.run_dir)
            elif path == "/var/lib/cni/results":
                ours = child.name.startswith(network) or any(
                    child.name == f"cni-loopback-{sandbox}-lo" for sandbox in sandboxes
                )
            elif path == "/run/netns":
                ours = False  # the run's namespaces live in its state folder
            else:
                ours = path in ("/var/lib/kubelet/device-plugins",)
            if ours:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    if record.sockets_dir.exists():
        shutil.rmtree(record.sockets_dir)


def _remove_cgroups(record: _Record) -> None:
    for root in _cgroup_roots(record):
        # cgroup folders go with rmdir only, children first; their files are virtual.
        folders = sorted(
            (d for d in root.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True
        )
        for folder in [*folders, root]:
            for _ in range(20):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the last process of a cgroup is still exiting
            else:
                raise EnvError(f"cannot remove cgroup {folder}")


def _remove_state(record: _Record) -> None:
    """The run's containerd and kubelet folders (images, snapshots, Pod volumes): large,
    and of no use once the node is gone. The logs stay in the run folder."""
    run_dir = Path(record.run_dir)
    for name in (
        "containerd",
        "kubelet",
        "kubelet-pki",
        "kubelet-volume-plugins",
        "cni",
        "pod-logs",
        "pause.tar",
    ):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def describe(procs: Processes) -> Iterator[str]:
    """The node programs' logs, for a failure message."""
    for started in procs.started:
        if started.name in ("containerd", "kubelet", "kube-scheduler", "dnsmasq", "service-proxy"):
            yield f"--- {started.name} ({started.log}) ---\n{log_tail(started.log)}"
