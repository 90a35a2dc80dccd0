"""Services for the local node's Pods: a small stand-in for kube-proxy and cluster DNS.

The node (harness/node.py) runs no kube-proxy: kube-proxy rewrites the host's iptables
wholesale and, for a Pod talking to a Pod through a Service, needs IP forwarding, which
the node keeps off so that no packet of a Pod can leave the machine. This program gives
Pods the two things a Service is for, the way kube-proxy's old userspace mode did:

- each TCP port of each ClusterIP Service gets a listener on 127.0.0.1 here and one DNAT
  rule, in the node's own nat chain, from <clusterIP>:<port> on the bridge to it; a
  connection is forwarded to one of the Service's *ready* endpoints, read from the
  EndpointSlices that the real endpointslice controller keeps (so a Service routes only
  to Pods that pass their readiness probe, as in a real cluster);
- a hosts file in the folder dnsmasq reads (`--hostsdir`, reloaded on change) maps
  `<name>.<namespace>.svc[.cluster.local]` to the ClusterIP.

It polls the API once a second; a Service shows up within that. It adds rules only to
the chain it is given, which node teardown removes with everything in it (after stopping
this program first). Run by harness/node.py::

    python -m harness.serviceproxy --kubeconfig K --nat-chain CHAIN --hosts-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes

from harness import kube

POLL_SECONDS = 1.0
CONNECT_TIMEOUT = 5.0
CLUSTER_DOMAIN = "cluster.local"
# The apiserver's Service: node.py forwards it with a rule of its own.
SKIPPED = {("default", "kubernetes")}

logger = logging.getLogger("serviceproxy")


@dataclasses.dataclass(frozen=True)
class PortKey:
    namespace: str
    service: str
    cluster_ip: str
    port: int
    port_name: str


@dataclasses.dataclass
class Listener:
    server: asyncio.Server
    local_port: int
    endpoints: list[tuple[str, int]] = dataclasses.field(default_factory=list)


class Proxy:
    def __init__(self, *, api: Any, nat_chain: str, hosts_dir: Path) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self._discovery = kubernetes.client.DiscoveryV1Api(api)
        self._chain = nat_chain
        self._hosts = hosts_dir / "services"
        self._listeners: dict[PortKey, Listener] = {}
        self._written_hosts: str | None = None  # written at the first round, even if empty

    def _iptables(self, action: str, key: PortKey, local_port: int) -> None:
        iptables = shutil.which("iptables") or "/usr/sbin/iptables"
        rule = [
            "-d", f"{key.cluster_ip}/32", "-p", "tcp", "--dport", str(key.port),
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{local_port}",
        ]  # fmt: skip
        subprocess.run(
            [iptables, "-w", "-t", "nat", action, self._chain, *rule],
            check=True,
            capture_output=True,
            timeout=30,
        )

    async def _forward(
        self, key: PortKey, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        listener = self._listeners.get(key)
        endpoints = list(listener.endpoints) if listener else []
        if not endpoints:
            logger.info("%s/%s:%d has no ready endpoint", key.namespace, key.service, key.port)
            writer.close()
            return
        host, port = random.choice(endpoints)  # noqa: S311 - load spreading, not security
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            logger.info("%s/%s -> %s:%d: %s", key.namespace, key.service, host, port, exc)
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError, ConnectionError):
                if dst.can_write_eof():
                    dst.write_eof()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    def _wanted(self) -> tuple[dict[PortKey, list[tuple[str, int]]], dict[str, list[str]]]:
        """Each Service port and its ready endpoints; each ClusterIP and its DNS names."""
        # Typed loosely: the client's models make every field optional.
        services: list[Any] = self._core.list_service_for_all_namespaces().items
        slices: list[Any] = self._discovery.list_endpoint_slice_for_all_namespaces().items
        by_service: dict[tuple[str, str], list[Any]] = {}
        for item in slices:
            name = (item.metadata.labels or {}).get("kubernetes.io/service-name")
            if name:
                by_service.setdefault((item.metadata.namespace, name), []).append(item)
        wanted: dict[PortKey, list[tuple[str, int]]] = {}
        names: dict[str, list[str]] = {}
        for svc in services:
            namespace, name = svc.metadata.namespace, svc.metadata.name
            ip = svc.spec.cluster_ip
            if (namespace, name) in SKIPPED or not ip or ip == "None":
                continue
            base = f"{name}.{namespace}.svc"
            names[ip] = [base, f"{base}.{CLUSTER_DOMAIN}"]
            for port in svc.spec.ports or ():
                if (port.protocol or "TCP") != "TCP":
                    continue
                key = PortKey(namespace, name, ip, int(port.port), port.name or "")
                endpoints: list[tuple[str, int]] = []
                for item in by_service.get((namespace, name), []):
                    ports = [p for p in item.ports or () if (p.name or "") == key.port_name]
                    if not ports or ports[0].port is None:
                        continue
                    for endpoint in item.endpoints or ():
                        ready = endpoint.conditions.ready if endpoint.conditions else None
                        # kube-proxy's rule: absent means ready.
                        if ready is False:
                            continue
                        endpoints.extend((a, int(ports[0].port)) for a in endpoint.addresses)
                wanted[key] = endpoints
        return wanted, names

    async def reconcile(self) -> None:
        wanted, names = await asyncio.to_thread(self._wanted)
        for key in [k for k in self._listeners if k not in wanted]:
            listener = self._listeners.pop(key)
            await asyncio.to_thread(self._iptables, "-D", key, listener.local_port)
            listener.server.close()
            logger.info("removed %s/%s:%d", key.namespace, key.service, key.port)
        for key, endpoints in wanted.items():
            existing = self._listeners.get(key)
            if existing is None:
                server = await asyncio.start_server(
                    functools.partial(self._forward, key), "127.0.0.1", 0
                )
                local_port = int(server.sockets[0].getsockname()[1])
                listener = Listener(server=server, local_port=local_port)
                self._listeners[key] = listener
                await asyncio.to_thread(self._iptables, "-A", key, local_port)
                logger.info(
                    "%s/%s %s:%d -> 127.0.0.1:%d",
                    key.namespace, key.service, key.cluster_ip, key.port, local_port,
                )  # fmt: skip
            else:
                listener = existing
            if endpoints != listener.endpoints:
                logger.info("%s/%s:%d: %s", key.namespace, key.service, key.port, endpoints)
            listener.endpoints = endpoints
        text = "".join(f"{ip} {' '.join(n)}\n" for ip, n in sorted(names.items()))
        if text != self._written_hosts:
            # Atomically, from outside the folder: dnsmasq reads every file in it, and
            # re-reads one when it changes.
            partial = self._hosts.parent.parent / f".{self._hosts.name}.partial"
            partial.write_text(text)
            partial.replace(self._hosts)
            self._written_hosts = text

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:  # an API hiccup must not stop the proxy; logged with its trace
                logger.exception("reconcile failed; retrying")
            await asyncio.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.serviceproxy", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--nat-chain", required=True)
    parser.add_argument("--hosts-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.hosts_dir.mkdir(parents=True, exist_ok=True)
    proxy = Proxy(
        api=kube.client(args.kubeconfig),
        nat_chain=args.nat_chain,
        hosts_dir=args.hosts_dir,
    )
    asyncio.run(proxy.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
