"""Faults of the local control plane, on the real components, for tests::

    plane = faults.ControlPlane(env)
    with plane.stopped("kube-apiserver"):       # every request fails in here
        ...
    plane.restart("etcd")                       # back, and both /health and /readyz answer
    faults.force_gone(plane)                    # every resourceVersion so far: 410 Gone
    proxy = faults.apiserver_proxy(env, plane)  # give proxy.kubeconfig to the operator
    proxy.stall()                               # its watches hang; new requests still pass
    faults.kill(operator_process)               # SIGKILL, as a crash or an OOM kill

Programs are stopped and started again through harness.processes (their records in
<run_dir>/processes.json follow, so `make devenv-down` stops the new ones), with the
command line they were started with (read from /proc before the first stop) and this
process's environment, on the same ports. Only the local environment's control plane
can be touched, never an external cluster's.
"""

from __future__ import annotations

import contextlib
import json
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import kube
from harness.apiproxy import ApiServerProxy
from harness.devenv import DevEnv
from harness.processes import EnvError, Processes, Started, http_ok, stop

__all__ = [
    "APISERVER",
    "ETCD",
    "ApiServerProxy",
    "ControlPlane",
    "apiserver_proxy",
    "cmdline",
    "compact",
    "etcd_revision",
    "force_gone",
    "kill",
]

ETCD = "etcd"
APISERVER = "kube-apiserver"
READY_TIMEOUT = {ETCD: 60.0, APISERVER: 180.0}  # as devenv's: generous for two busy cores
# SIGTERM, then SIGKILL. kube-apiserver stops listening at once on SIGTERM but here takes
# over 10 s more to exit; waiting longer proves nothing. 0 is a crash (SIGKILL at once).
STOP_GRACE = 5.0


def cmdline(pid: int) -> list[str]:
    """A running process's command line."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [arg.decode() for arg in raw.split(b"\0") if arg]


def _flag(argv: list[str], name: str) -> str:
    prefix = f"--{name}="
    for arg in argv:
        if arg.startswith(prefix):
            return arg.removeprefix(prefix)
    raise EnvError(f"{argv[0]} was started without {prefix}")


class ControlPlane:
    """etcd and kube-apiserver of a running local environment, to stop and start again."""

    def __init__(self, env: DevEnv) -> None:
        if env.external_cluster:
            raise EnvError("the control plane of an external cluster is not ours to stop")
        self.env = env
        self._argv = {name: cmdline(self._record(name).pid) for name in (ETCD, APISERVER)}
        self._started: list[Started] = []
        # The admin's credentials as files (the kubernetes client writes a kubeconfig's
        # inline data to temporary files): to probe /readyz and to be the proxy's identity.
        self.tls: Any = kube.client(env.kubeconfig).configuration

    @property
    def etcd_url(self) -> str:
        return _flag(self._argv[ETCD], "listen-client-urls").split(",")[0]

    def argv(self, name: str) -> list[str]:
        """The command line a component was started with."""
        return list(self._argv[name])

    def _record(self, name: str) -> Started:
        for started in Processes.load(self.env.run_dir).started:
            if started.name == name and started.alive():
                return started
        raise EnvError(f"{name} is not running in {self.env.run_dir}")

    def running(self, name: str) -> bool:
        return any(s.name == name and s.alive() for s in Processes.load(self.env.run_dir).started)

    def stop(self, name: str, *, grace: float = STOP_GRACE) -> None:
        """Stop a component: SIGTERM, and SIGKILL after `grace` seconds (0: a crash)."""
        stop(self._record(name), grace=grace)

    def start(self, name: str) -> None:
        """Start a stopped component again as it was, and wait until it is ready (after
        etcd, until kube-apiserver is ready again too, when it runs)."""
        if self.running(name):
            raise EnvError(f"{name} is already running")
        procs = Processes.load(self.env.run_dir)
        procs.started = [s for s in procs.started if s.name != name]  # the stopped one
        started = procs.start(name, self._argv[name])
        self._started.append(started)
        self.wait_ready(name)
        if name == ETCD and self.running(APISERVER):
            self.wait_ready(APISERVER)

    def restart(self, name: str, *, grace: float = STOP_GRACE) -> None:
        self.stop(name, grace=grace)
        self.start(name)

    @contextlib.contextmanager
    def stopped(self, name: str, *, grace: float = STOP_GRACE) -> Iterator[None]:
        """A component down for the body of the with-block, started again after it."""
        self.stop(name, grace=grace)
        try:
            yield
        finally:
            self.start(name)

    def wait_ready(self, name: str) -> None:
        """Wait for etcd's /health or kube-apiserver's /readyz."""
        if name == ETCD:
            url, context = f"{self.etcd_url}/health", None
        else:
            url, context = f"{self.env.api_server}/readyz", self._admin_tls()
        Processes.load(self.env.run_dir).wait_ready(
            self._record(name),
            lambda: http_ok(url, context=context),
            timeout=READY_TIMEOUT[name],
            what="healthy" if name == ETCD else "/readyz",
        )

    def ensure_running(self) -> None:
        """Start whatever a failed test left stopped, so that later tests have it."""
        for name in (ETCD, APISERVER):
            if not self.running(name):
                self.start(name)

    def close(self, *, keep_running: bool) -> None:
        """At the end of the session: stop the programs started here, since the session's
        teardown knows only the originals; unless the environment outlives the session
        (`make devenv-up`), whose `devenv-down` finds them in processes.json."""
        if not keep_running:
            for started in reversed(self._started):
                stop(started, grace=STOP_GRACE)
        self._started.clear()

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.tls.ssl_ca_cert)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        return context


# --- etcd compaction and 410 Gone ----------------------------------------------------------


def _etcd(plane: ControlPlane, path: str, body: dict[str, Any]) -> Any:
    """A call to etcd's HTTP/JSON gateway (grpc-gateway: int64 values are strings)."""
    request = urllib.request.Request(  # noqa: S310 - the local etcd
        f"{plane.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return json.load(resp)


def etcd_revision(plane: ControlPlane) -> int:
    """etcd's current revision: the newest resourceVersion the apiserver can have issued."""
    return int(_etcd(plane, "/v3/maintenance/status", {})["header"]["revision"])


def compact(plane: ControlPlane, revision: int | None = None) -> int:
    """Compact etcd's history up to `revision` (default: the current one); returns it.
    Reads and watches at an older revision that reach etcd now fail as compacted."""
    revision = etcd_revision(plane) if revision is None else revision
    try:
        _etcd(plane, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
    except urllib.error.HTTPError as exc:
        if b"compacted" not in exc.read():  # compacted at it already: the same result
            raise
    return revision


def force_gone(plane: ControlPlane, *, grace: float = STOP_GRACE) -> int:
    """Make every resourceVersion issued so far expire: a watch from one gets 410 Gone
    (an ERROR event with reason Expired, or a 410 answer); returns the compacted revision.

    Compaction alone is not enough: kube-apiserver serves watches of most kinds from its
    watch cache, which keeps its own history of events (those of Events, which it does not
    cache, go to etcd and expire at once). Restarting kube-apiserver starts each cache at
    the current revision, and the compaction keeps etcd from serving the old ones."""
    revision = compact(plane)
    plane.restart(APISERVER, grace=grace)
    return revision


# --- the apiserver behind a proxy, and a crashing operator --------------------------------


def apiserver_proxy(env: DevEnv, plane: ControlPlane) -> ApiServerProxy:
    """A stall-capable proxy to the environment's kube-apiserver, presenting its serving
    certificate; `.kubeconfig` is the admin's kubeconfig pointed at it. close() it."""
    argv = plane.argv(APISERVER)
    return ApiServerProxy(
        upstream=env.api_server,
        serving_cert=Path(_flag(argv, "tls-cert-file")),
        serving_key=Path(_flag(argv, "tls-private-key-file")),
        ca_cert=Path(plane.tls.ssl_ca_cert),
        admin_cert=Path(plane.tls.cert_file),
        admin_key=Path(plane.tls.key_file),
        client_kubeconfig=env.kubeconfig,
        kubeconfig_dir=env.run_dir,
    )


def kill(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> int:
    """SIGKILL a process this test started (the operator of harness.operator.running):
    no shutdown handler runs, nothing is released or closed cleanly. Returns its exit
    status (-9) once reaped."""
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=timeout)
