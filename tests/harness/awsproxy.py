"""A recording proxy in front of moto (or OpenBao): what reached the provider, and as whom.

moto does not enforce IAM per resource, so per-namespace isolation is proven by
recording every request: its action, the access key id in its SigV4
Authorization header, and (for STS AssumeRoleWithWebIdentity) the web identity
token. moto's /moto-api/data.json maps the access keys it issued to roles.
The proxy can also be taken down and brought back on the same port, to
simulate an outage without losing moto's state.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


@dataclasses.dataclass(frozen=True)
class Call:
    """One request that reached moto through the proxy."""

    action: str
    access_key: str | None
    web_identity_token: str | None
    body: bytes = dataclasses.field(repr=False)
    at: float = dataclasses.field(default_factory=time.monotonic)
    method: str = "POST"
    path: str = "/"


def _action(headers: Any, body: bytes) -> tuple[str, str | None]:
    target = headers.get("X-Amz-Target")
    if target:  # JSON protocols: secretsmanager.GetSecretValue, AmazonSSM.GetParameters
        return target.split(".", 1)[-1], None
    form = urllib.parse.parse_qs(body.decode(errors="replace"))
    token = form.get("WebIdentityToken", [None])[0]
    return form.get("Action", ["?"])[0], token


class AwsRecordingProxy:
    """A loopback HTTP proxy that records and forwards every request to moto."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._forward()

            do_GET = do_PUT = do_DELETE = do_LIST = do_POST  # noqa: N815 - http.server's naming

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action, token = _action(self.headers, body)
                auth = self.headers.get("Authorization") or ""
                match = _CREDENTIAL.search(auth)
                call = Call(
                    action,
                    match.group(1) if match else None,
                    token,
                    body,
                    method=self.command,
                    path=self.path,
                )
                with proxy._lock:
                    proxy.calls.append(call)
                conn = http.client.HTTPConnection(
                    proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port, timeout=30
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                conn.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Take the endpoint down: connections are refused until start()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def actions(self) -> list[str]:
        with self._lock:
            return [c.action for c in self.calls]

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def roles_by_access_key(self) -> dict[str, str]:
        """moto's record of the credentials it issued: access key id -> role ARN."""
        base = f"{self.upstream.scheme}://{self.upstream.netloc}"
        with urllib.request.urlopen(f"{base}/moto-api/data.json", timeout=10) as resp:  # noqa: S310
            data = json.load(resp)
        return {r["access_key_id"]: r["role_arn"] for r in data["sts"]["AssumedRole"]}
